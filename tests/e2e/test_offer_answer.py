"""Mid-call offer/answer against SIPp on loopback, with the carrier's RTP played by the test: the
media follows every answer at once, whichever message carries it (RFC 3264, RFC 6337)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.conftest import wait_until
from tests.e2e.calls import carrier, watched_client
from tests.e2e.carrier_media import carrier_media
from tests.peers.sipp import free_udp_port, uas
from trunkline.enums import DialplanAction

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"


@pytest.mark.parametrize(("host", "pt", "codec"), [("127.0.0.2", 0, "PCMU"), ("127.0.0.1", 8, "PCMA")])
async def test_a_moved_carrier_gets_the_rtp_at_once(start_gateway, peers, host, pt, codec):
    """The carrier's re-INVITE names a new address and port (or port and codec) while its old media
    address still streams: our RTP goes to the new one, in the new codec, and stays there."""
    old_port, new_port = free_udp_port(), free_udp_port()
    old, new = await carrier_media("127.0.0.1", old_port, 1), await carrier_media(host, new_port, 2)
    sipp = await peers(uas("uas_reinvite_moves", timeout_s=60, pause_ms=1000, scenario_vars={
        "RTP_PORT": str(old_port), "NEW_HOST": host, "NEW_PORT": str(new_port), "NEW_PT": str(pt),
        "NEW_CODEC": codec}))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.PARK)
    await watch.until(call.call_sid, "ANSWERED")
    old.talking = True  # latches Trunkline's RTP to the old address; it goes on after the move
    await wait_until(lambda: new.received, "RTP at the new address", timeout=15)
    new.talking = True
    await asyncio.sleep(0.5)
    old_count = len(old.received)
    await asyncio.sleep(0.5)
    assert len(old.received) == old_count  # nothing more to the old address
    assert len(new.received) > 30 and set(new.received) == {pt}
    await client.terminate(call.call_sid)
    hangup = await watch.hangup(call.call_sid)
    old.close()
    new.close()
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    assert hangup.status == "COMPLETED"


async def test_a_delayed_offer_reinvite_keeps_two_way_audio(start_gateway, peers):
    """The carrier's re-INVITE without SDP gets our offer; its answer, in the ACK, moves the media
    to a new port, and both directions carry on there."""
    old_port, new_port = free_udp_port(), free_udp_port()
    old, new = await carrier_media("127.0.0.1", old_port, 1), await carrier_media("127.0.0.1", new_port, 2)
    sipp = await peers(uas("uas_reinvite_delayed", timeout_s=60, scenario_vars={
        "RTP_PORT": str(old_port), "NEW_PORT": str(new_port)}))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.PARK)
    await watch.until(call.call_sid, "ANSWERED")
    old.talking = True
    await wait_until(lambda: new.received, "RTP at the port the ACK's answer names", timeout=15)
    old.talking, new.talking = False, True
    live = gateway.calls.find("local", call.call_sid)
    received = live.leg.media_stats().packets_received
    await wait_until(lambda: live.leg.media_stats().packets_received > received + 25, "the carrier's RTP")
    await client.terminate(call.call_sid)
    await watch.hangup(call.call_sid)
    old.close()
    new.close()
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
