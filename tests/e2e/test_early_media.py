"""Early media end to end: a carrier's 183 (reliable, RFC 3262) with SDP, and its ringback
reaching the call's agent while the call is still RINGING (PROTOCOL.md §6 CallEvents)."""

from __future__ import annotations

import shutil

import pytest
from websockets.asyncio.server import serve

from tests.conftest import wait_until
from tests.e2e.calls import carrier, watched_client
from tests.e2e.carrier_media import carrier_media
from tests.e2e.test_ai_bridge import TwilioBot, loud, tone, tone_share
from tests.peers.sipp import free_udp_port, uas
from trunkline.enums import DialplanAction
from trunkline.media.g711 import pcmu_encode

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")


async def test_early_media_reaches_the_agent_while_ringing_and_its_greeting_waits_for_the_answer(
        start_gateway, peers):
    port = free_udp_port()
    ringback = await carrier_media("127.0.0.1", port, 1, pcmu_encode(tone(440, 0.02)))
    sipp = await peers(uas("uas_early_100rel", timeout_s=60, pause_ms=4000,
                           scenario_vars={"RTP_PORT": str(port), "ANSWER_PORT": str(port)}))
    bot = TwilioBot(tone(1000, 1.0))
    async with serve(bot.handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/media"
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial("+15551234567", trunk_id="carrier",
                                 default_app=DialplanAction.AI_BIDIRECTIONAL_STREAM, ai_websocket_url=url)
        await watch.until(call.call_sid, "RINGING")
        leg = gateway.calls.find("local", call.call_sid).leg
        await wait_until(lambda: leg._media.negotiated is not None, "the 183's SDP applied")
        ringback.gateway = ("127.0.0.1", leg._media.local_address[1])
        ringback.talking = True
        await wait_until(lambda: len(bot.heard) >= 16000, "a second of ringback at the agent")
        assert watch.statuses(call.call_sid) == ["INITIATED", "RINGING"]
        assert tone_share(bytes(bot.heard), 440) > 0.8
        assert ringback.received == []  # the agent's greeting waits for the answer
        await watch.until(call.call_sid, "ANSWERED")
        await wait_until(lambda: sum(map(loud, ringback.payloads)) >= 25, "the agent's greeting at the carrier")
        await client.terminate(call.call_sid)
        hangup = await watch.hangup(call.call_sid)
    ringback.close()
    assert hangup.status == "COMPLETED"
    assert len(bot.events("start")) == 1  # the early agent is the call's agent: not connected twice
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()  # with its PRACK


async def test_a_different_answer_in_the_2xx_replaces_the_early_one(start_gateway, peers):
    early_port, answer_port = free_udp_port(), free_udp_port()
    early, answer = await carrier_media("127.0.0.1", early_port, 1), await carrier_media("127.0.0.1", answer_port, 2)
    sipp = await peers(uas("uas_early_100rel", timeout_s=60, pause_ms=500,
                           scenario_vars={"RTP_PORT": str(early_port), "ANSWER_PORT": str(answer_port)}))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial("+15551234567", trunk_id="carrier", default_app=DialplanAction.PARK)
    await watch.until(call.call_sid, "ANSWERED")
    await wait_until(lambda: len(answer.received) >= 25, "RTP at the 2xx's port")
    assert early.received == []
    await client.terminate(call.call_sid)
    await watch.hangup(call.call_sid)
    early.close()
    answer.close()
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
