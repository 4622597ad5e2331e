"""RTP inactivity against SIPp on loopback: a carrier that dies without a BYE takes its calls with it
within ``rtp_timeout_s``, while a call the carrier holds stays up (PROTOCOL.md §6 CallEvents)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest

from tests.conftest import wait_until
from tests.e2e.calls import carrier, watched_client
from tests.peers.sipp import uas
from trunkline.enums import DialplanAction

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"


async def test_a_carrier_killed_mid_call_ends_the_call_failed_102(start_gateway, peers):
    """One call, keepalives off: nothing but the media can tell that the carrier is gone (with more
    calls, the ICMP answering the first BYE may end the others first, as a transport failure)."""
    sipp = await peers(uas("uas_answer", rtp_echo=True, timeout_s=60))
    gateway = await start_gateway({**carrier(sipp.port, keepalive_s=0), "media": {"rtp_timeout_s": 2}})
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.PARK)
    await watch.until(call.call_sid, "ANSWERED")
    await asyncio.sleep(3)  # longer than rtp_timeout_s: SIPp's echo keeps the call up
    assert watch.statuses(call.call_sid) == ["INITIATED", "ANSWERED"]
    os.kill(sipp.pid, signal.SIGKILL)
    hangup = await watch.hangup(call.call_sid, timeout=15)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 102)
    assert hangup.packets_received > 50
    await wait_until(lambda: gateway.telephony.rtp_ports.leased == 0, "the RTP ports to be given back")


async def _held_call(start_gateway, peers, **media: int):
    """A call the carrier puts on hold (re-INVITE a=sendonly) at once, after which neither side sends RTP."""
    sipp = await peers(uas("uas_reinvite_hold", rtp_echo=True, timeout_s=60))
    gateway = await start_gateway({**carrier(sipp.port), "media": media})
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.PARK)
    await watch.until(call.call_sid, "ANSWERED")
    live = gateway.calls.find("local", call.call_sid)
    await wait_until(lambda: live.leg._media.negotiated.remote_direction == "sendonly", "the carrier's hold")
    return sipp, client, watch, call


async def test_a_call_the_carrier_holds_outlives_rtp_timeout(start_gateway, peers):
    sipp, client, watch, call = await _held_call(start_gateway, peers, rtp_timeout_s=1)
    await asyncio.sleep(3)  # three times rtp_timeout_s without a packet either way
    assert watch.statuses(call.call_sid) == ["INITIATED", "ANSWERED"]
    await client.terminate(call.call_sid)
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()


async def test_rtp_hold_timeout_ends_a_silent_held_call(start_gateway, peers):
    sipp, client, watch, call = await _held_call(start_gateway, peers, rtp_timeout_s=30, rtp_hold_timeout_s=1)
    hangup = await watch.hangup(call.call_sid, timeout=15)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 102)
    result = await sipp.await_result(timeout=10)
    assert result.requests("BYE", "received"), result.describe()
