"""Carriers that fail: a dead trunk, a trunk that redirects, session timers against SIPp.

Each test asserts the call's outcome (status and Q.850 cause) as an application sees it.
"""

from __future__ import annotations

import shutil
import socket

import pytest

from tests.e2e.calls import carrier, watched_client
from tests.peers.sipp import uas

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"


async def test_a_dead_udp_trunk_fails_at_once_with_cause_27(start_gateway):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # closed again: nothing listens there
    gateway = await start_gateway(carrier(dead_port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid, timeout=10)  # timer B would take 32 s
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 27)
    assert gateway.trunk_monitor.health["carrier"].consecutive_failures >= 1


# RFC 4028 puts the floor of a session interval at 90 s, so a refresh would take 45 s to watch. These
# tests lower min_se_s (the gateway takes it from config) and have the carrier grant SESSION_S instead.
SESSION_S = 6
SHORT_SESSIONS = {"sip": {"min_se_s": 2, "session_expires_s": 60}}


@needs_sipp
@pytest.mark.parametrize("allow_update", ["", ", UPDATE"])
async def test_a_session_the_carrier_makes_us_refresh_is_refreshed(start_gateway, peers, allow_update):
    """UPDATE where the carrier's Allow lists it, else a re-INVITE with the same SDP."""
    sipp = await peers(uas("uas_session_refresh", timeout_s=30, scenario_vars={
        "SE": str(SESSION_S), "REFRESH_WAIT_MS": str(SESSION_S * 900), "ALLOW_UPDATE": allow_update}))
    gateway = await start_gateway({**carrier(sipp.port), **SHORT_SESSIONS})
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid, timeout=20)
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)  # the carrier's BYE after the refresh
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    method = "UPDATE" if allow_update else "INVITE"
    refresh = [m for m in result.requests(method, "received") if "CSeq: 2 " in m.text]
    assert refresh and f"Session-Expires: {SESSION_S};refresher=uac" in refresh[0].text


@needs_sipp
async def test_a_refresh_the_carrier_owes_and_never_sends_ends_the_call(start_gateway, peers):
    sipp = await peers(uas("uas_session_owed", timeout_s=30, scenario_vars={"SE": str(SESSION_S)}))
    gateway = await start_gateway({**carrier(sipp.port), **SHORT_SESSIONS})
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    await watch.until(call.call_sid, "ANSWERED")
    hangup = await watch.hangup(call.call_sid, timeout=20)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 102)
    result = await sipp.await_result(timeout=10)
    assert result.ok and result.requests("BYE", "received"), result.describe()


@needs_sipp
async def test_a_302_is_followed_to_a_second_carrier(start_gateway, peers):
    second = await peers(uas("uas_answer", timeout_s=30))
    first = await peers(uas("uas_redirect", timeout_s=30,
                            scenario_vars={"CONTACT": f"sip:{TO}@127.0.0.1:{second.port}"}))
    gateway = await start_gateway(carrier(first.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    await watch.until(call.call_sid, "ANSWERED")
    await client.terminate(call.call_sid)
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)
    redirected, answered = await first.await_result(timeout=10), await second.await_result(timeout=10)
    assert redirected.ok and answered.ok, (redirected.describe(), answered.describe())
    (invite,) = answered.requests("INVITE", "received")
    assert invite.first_line.startswith(f"INVITE sip:{TO}@127.0.0.1:{second.port} ")


@needs_sipp
async def test_a_302_to_a_host_the_trunk_does_not_allow_fails_the_call(start_gateway, peers, caplog):
    elsewhere = "sip:premium@192.0.2.9:5060"
    sipp = await peers(uas("uas_redirect", timeout_s=30, scenario_vars={"CONTACT": elsewhere}))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 23)
    assert f"Contact {elsewhere} refused" in caplog.text
    assert (await sipp.await_result(timeout=10)).ok
