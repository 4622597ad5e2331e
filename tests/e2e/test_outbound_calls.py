"""Originate and Terminate against a real carrier: SIPp as UAS on loopback (PROTOCOL.md §6)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket

import pytest

from tests.e2e.calls import carrier, tapped_carrier, watched_client
from tests.peers.sipp import free_udp_port, proxy_auth_uas, uas
from trunkline.enums import DialplanAction

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"


async def test_answered_call_audio_both_ways_then_terminate_sends_bye(start_gateway, peers):
    sipp = await peers(uas("uas_answer", rtp_echo=True, timeout_s=30))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.MUSIC_ON_HOLD)
    assert call.status == "QUEUED"
    await watch.until(call.call_sid, "ANSWERED")
    await asyncio.sleep(1.5)
    await client.terminate(call.call_sid)
    hangup = await watch.hangup(call.call_sid)
    assert watch.statuses(call.call_sid) == ["INITIATED", "ANSWERED", "COMPLETED"]
    assert hangup.q850_cause == 16 and hangup.codec == "PCMU" and hangup.trunk_id == "carrier"
    assert hangup.packets_sent > 40 and hangup.packets_received > 40  # SIPp echoed our hold music
    assert hangup.bytes_sent == hangup.packets_sent * 160
    assert 4.0 < hangup.estimated_mos <= 4.5 and hangup.packets_lost == 0
    assert hangup.answer_timestamp_ms >= hangup.start_timestamp_ms and hangup.end_timestamp_ms > hangup.answer_timestamp_ms
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    assert result.requests("BYE", "received")


@pytest.mark.parametrize("scenario,status,cause", [("uas_busy", "BUSY", 17), ("uas_unavailable", "FAILED", 41)])
async def test_rejections_map_to_status_and_q850(start_gateway, peers, scenario, status, cause):
    sipp = await peers(uas(scenario, timeout_s=20))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == (status, cause)
    assert (await sipp.await_result(timeout=10)).ok


async def test_no_answer_cancels_after_the_ring_timeout(start_gateway, peers):
    sipp = await peers(uas("uas_ring_cancel", timeout_s=20))
    gateway = await start_gateway(carrier(sipp.port, ring_timeout_s=1))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    await watch.until(call.call_sid, "RINGING")
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("NO_ANSWER", 19)
    result = await sipp.await_result(timeout=10)
    assert result.ok and result.requests("CANCEL", "received"), result.describe()


async def test_terminate_while_ringing_sends_cancel(start_gateway, peers):
    sipp = await peers(uas("uas_ring_cancel", timeout_s=20))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    await watch.until(call.call_sid, "RINGING")
    await client.terminate(call.call_sid)
    assert (await watch.hangup(call.call_sid)).status == "CANCELED"
    result = await sipp.await_result(timeout=10)
    assert result.ok and result.requests("CANCEL", "received"), result.describe()


async def test_max_duration_sends_bye_and_reports_timeout(start_gateway, peers):
    sipp = await peers(uas("uas_answer", timeout_s=20))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", max_duration_ms=800)
    hangup = await watch.hangup(call.call_sid)
    assert hangup.status == "TIMEOUT"
    result = await sipp.await_result(timeout=10)
    assert result.ok and result.requests("BYE", "received")


async def test_far_end_bye_completes_the_call(start_gateway, peers):
    sipp = await peers(uas("uas_answer_bye", pause_ms=500, timeout_s=20))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)
    assert (await sipp.await_result(timeout=10)).ok


@pytest.mark.parametrize("challenge", [401, 407])
@pytest.mark.parametrize("password,status", [("s3cret", "COMPLETED"), ("wrong", "FAILED")])
async def test_digest_challenges(start_gateway, peers, challenge, password, status):
    port = free_udp_port()
    if challenge == 401:
        sipp = uas("uas_auth_401", port=port, timeout_s=20, keys={"auth_user": "alice", "auth_pass": "s3cret"})
    else:
        uri = f"sip:{TO}@127.0.0.1:{port};user=phone"
        sipp = proxy_auth_uas(user="alice", password="s3cret", port=port, request_uris=[uri], timeout_s=20)
    await peers(sipp)
    gateway = await start_gateway(carrier(port, username="alice", password=password))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", max_duration_ms=500)
    hangup = await watch.hangup(call.call_sid)
    expected = "TIMEOUT" if status == "COMPLETED" else "FAILED"
    assert hangup.status == expected, watch.statuses(call.call_sid)
    result = await sipp.await_result(timeout=10)
    invites = result.requests("INVITE", "received")
    assert len(invites) == 2, result.describe()  # one challenge answered, never a loop
    header = "Authorization" if challenge == 401 else "Proxy-Authorization"
    assert invites[1].header(header) and "alice" in invites[1].header(header)


async def test_far_end_hold_is_answered_recvonly_and_the_call_stays_up(start_gateway, peers):
    sipp = await peers(uas("uas_reinvite_hold", timeout_s=20))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    await watch.until(call.call_sid, "ANSWERED")
    await asyncio.sleep(1.5)  # SIPp re-INVITEs with a=sendonly meanwhile
    assert watch.statuses(call.call_sid)[-1] == "ANSWERED"
    await client.terminate(call.call_sid)
    assert (await watch.hangup(call.call_sid)).status == "COMPLETED"
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()  # SIPp's own check: our 200 carried a=recvonly
    answers = [m for m in result.messages if m.status == 200 and m.cseq_method == "INVITE" and m.direction == "received"]
    assert answers and "a=recvonly" in answers[-1].body


async def test_loss_and_jitter_statistics_follow_the_network(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers, drop_every=10, echo_delays=(0, 0, 0, 0.015, 0.03))
    try:
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.MUSIC_ON_HOLD, max_duration_ms=3000)
        hangup = await watch.hangup(call.call_sid)
    finally:
        transport.close()
    assert hangup.status == "TIMEOUT"
    expected = hangup.packets_received + hangup.packets_lost
    assert 0.07 < hangup.packets_lost / expected < 0.13  # every 10th dropped
    assert hangup.jitter_ms > 1.0
    assert hangup.estimated_mos < 4.2


async def test_malformed_sip_leaves_the_stack_serving(start_gateway, peers):
    sipp = await peers(uas("uas_answer", timeout_s=30))
    gateway = await start_gateway(carrier(sipp.port))
    host, port = gateway.sip.address
    junk = [b"", b"\x00" * 100, b"INVITE\r\n\r\n", b"SIP/2.0 200\r\n", b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n" * 50,
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nab", b"A" * 70000, random.Random(1).randbytes(1200)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(300):
            s.sendto(junk[i % len(junk)][:65000], (host, port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", max_duration_ms=500)
    assert (await watch.hangup(call.call_sid)).status == "TIMEOUT"
