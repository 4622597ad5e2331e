"""AI_BIDIRECTIONAL_STREAM end to end: SIPp carrier with RTP echo <-> Trunkline <-> an agent.

The echo makes the agent hear its own voice back as the caller, so one tone checks both directions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import struct
from http import HTTPStatus

import pytest
from websockets.asyncio.server import serve

from tests.conftest import wait_until
from tests.e2e.calls import carrier, tapped_carrier, watched_client
from tests.peers.sipp import uas
from trunkline.enums import DialplanAction
from trunkline.media.dtmf import ToneDetector
from trunkline.media._audioop import audioop
from trunkline.media.g711 import pcmu_decode, pcmu_encode
from trunkline.media_engine.sources import Tone

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

AI = DialplanAction.AI_BIDIRECTIONAL_STREAM
TO = "+15551234567"


def tone(freq: float, seconds: float, rate: int = 8000, level: float = 0.3) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(32767 * level * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def loud(payload: bytes) -> bool:
    """An RTP payload (µ-law) carrying the test tone rather than silence."""
    return audioop.rms(pcmu_decode(payload), 2) > 1000


def tone_share(pcm: bytes, freq: float, rate: int = 8000) -> float:
    size = rate // 50 * 2
    detector = ToneDetector(freq, rate)
    frames = [pcm[i:i + size] for i in range(0, len(pcm) - size + 1, size)]
    return sum(detector.detect(f) for f in frames) / max(1, len(frames))


class TwilioBot:
    """A bot written for Twilio Media Streams: it speaks ``speech`` (µ-law, odd chunk sizes) with a
    mark after it, records everything, and can clear or hang up on cue."""

    def __init__(self, speech: bytes) -> None:
        self.speech = speech
        self.messages: list[dict] = []
        self.heard = bytearray()
        self.mark_echo_at: float | None = None
        self.stream_sid = ""
        self.ws = None
        self.done = asyncio.Event()

    async def handler(self, ws) -> None:
        self.ws = ws
        loop = asyncio.get_running_loop()
        async for raw in ws:
            message = json.loads(raw)
            self.messages.append(message)
            event = message["event"]
            if event == "start":
                self.stream_sid = message["streamSid"]
                ulaw = pcmu_encode(self.speech)
                for i in range(0, len(ulaw), 777):
                    await ws.send(json.dumps({"event": "media", "streamSid": self.stream_sid,
                                              "media": {"payload": base64.b64encode(ulaw[i:i + 777]).decode()}}))
                await ws.send(json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": "said-it"}}))
            elif event == "media":
                self.heard += pcmu_decode(base64.b64decode(message["media"]["payload"]))
            elif event == "mark":
                self.mark_echo_at = loop.time()
            elif event == "stop":
                self.done.set()

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps({"streamSid": self.stream_sid, **message}))

    def events(self, name: str) -> list[dict]:
        return [m for m in self.messages if m["event"] == name]


async def test_twilio_bot_talks_with_the_caller_and_marks_and_clear_work(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers)
    bot = TwilioBot(tone(1000, 1.0))
    async with serve(bot.handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/media"
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", call_from="+15550001111", default_app=AI, ai_websocket_url=url)
        await watch.until(call.call_sid, "ANSWERED")
        await asyncio.sleep(2.5)
        # a long utterance, then clear mid-way: the carrier must hear silence from the next frame on
        await bot.send({"event": "media", "media": {"payload": base64.b64encode(pcmu_encode(tone(1000, 8.0))).decode()}})
        await asyncio.sleep(0.6)
        loop = asyncio.get_running_loop()
        cleared_at = loop.time()
        await bot.send({"event": "clear"})
        await asyncio.sleep(0.6)
        await bot.send({"event": "hangup"})  # Trunkline extension: the agent ends the call
        hangup = await watch.hangup(call.call_sid)
        await asyncio.wait_for(bot.done.wait(), 5)
    transport.close()

    connected, start = bot.messages[0], bot.messages[1]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["event"] == "start" and start["start"]["callSid"] == call.call_sid
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    params = start["start"]["customParameters"]
    assert (params["call_sid"], params["to"], params["from"], params["trunk_id"], params["tenant_id"]) == (
        call.call_sid, TO, "+15550001111", "carrier", "local")
    # one media message per 20 ms of call audio: 50 a second, by the call's own media clock
    media = bot.events("media")
    assert len(media) > 100
    assert {int(b["media"]["timestamp"]) - int(a["media"]["timestamp"]) for a, b in zip(media, media[1:])} == {20}
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    # the bot's tone went to the carrier and came back through the echo
    assert tone_share(bytes(bot.heard), 1000) > 0.3
    # the mark came back only after the second of speech before it (50 frames) had gone to the carrier
    assert bot.mark_echo_at is not None
    assert sum(1 for at, payload in tap.sent if at < bot.mark_echo_at and loud(payload)) >= 50
    # after clear: at most one more frame of the tone reached the carrier (one may be in flight)
    after = [payload for at, payload in tap.sent if at > cleared_at]
    before = [payload for at, payload in tap.sent if at < cleared_at][-5:]
    assert len(before) == 5 and all(loud(p) for p in before)  # the tone was playing when the clear went out
    tone_frames = [p for p in after[:10] if loud(p)]
    assert len(after) >= 10 and len(tone_frames) <= 1, len(tone_frames)
    assert hangup.status == "COMPLETED" and bot.events("stop")


async def test_binary_dialect_at_16khz(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers)
    received, texts = bytearray(), []

    async def agent(ws):
        async for message in ws:
            if isinstance(message, str):
                texts.append(json.loads(message))
                if texts[-1].get("event") == "start":
                    await ws.send(tone(1000, 1.5, rate=16000))  # one big chunk; Trunkline re-chunks
            else:
                received.extend(message)
                if len(received) >= 16000 * 2 * 3:
                    await ws.close()

    async with serve(agent, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        gateway = await start_gateway({**carrier(sipp.port), "agents": [
            {"id": "wideband", "url": f"ws://127.0.0.1:{port}/pcm", "dialect": "pcm16", "sample_rate": 16000}]})
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=AI, default_app_args="wideband")
        hangup = await watch.hangup(call.call_sid)  # the agent closing its socket ends the call
    transport.close()
    start = texts[0]
    assert start["sample_rate"] == 16000 and start["encoding"] == "pcm16le"
    assert tone_share(bytes(received), 1000, rate=16000) > 0.3
    assert hangup.status == "COMPLETED"


async def test_sdk_client_as_the_agent(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers)
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=AI, max_duration_ms=4000)
    await watch.until(call.call_sid, "ANSWERED")
    speech = tone(1000, 1.0)
    for i in range(0, len(speech), 320):
        await client.send_audio(call.call_sid, speech[i:i + 320], codec="PCM16")
    heard = bytearray()
    async for frame in client.audio(call.call_sid):
        assert frame.codec == "PCM16"
        heard += frame.payload
        if frame.end_of_stream or len(heard) >= 8000 * 2 * 3:
            break
    transport.close()
    assert tone_share(bytes(heard), 1000) > 0.2


async def test_unreachable_agent_ends_the_call_with_a_clear_status(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers)
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=AI, ai_websocket_url="ws://127.0.0.1:9/nobody")
    hangup = await watch.hangup(call.call_sid)
    transport.close()
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 41)
    assert hangup.packets_sent > 0  # the caller heard hold music while Trunkline retried


async def test_an_agent_refusing_the_websocket_handshake_ends_the_call_too(start_gateway, peers):
    sipp = await peers(uas("uas_answer", timeout_s=30))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    refuse = lambda connection, request: connection.respond(HTTPStatus.FORBIDDEN, "not you\n")  # noqa: E731
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        call = await client.dial(TO, trunk_id="carrier", default_app=AI, ai_websocket_url=f"ws://127.0.0.1:{port}/")
        hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 41)


async def test_barge_in_clears_agent_audio_after_the_patience_window(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers)
    tap.pass_echo = False  # the caller is silent at first
    bot = TwilioBot(tone(800, 10.0))  # a long utterance
    async with serve(bot.handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/media"
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=AI, ai_websocket_url=url,
                                 auto_barge_in=True, barge_in_patience_ms=300)
        await watch.until(call.call_sid, "ANSWERED")
        await asyncio.sleep(1.5)
        assert not bot.events("clear")  # agent talking, caller silent: no barge-in
        loop = asyncio.get_running_loop()
        tap.pass_echo = True  # the caller starts talking over the agent
        spoke_at = loop.time()
        await wait_until(lambda: bot.events("clear"), "the barge-in notice")
        await client.terminate(call.call_sid)
        await watch.hangup(call.call_sid)
    transport.close()
    notice = bot.events("clear")
    assert notice and notice[0]["clear"]["reason"] == "barge_in"
    frames_after = sum(1 for at, p in tap.sent if at > spoke_at and loud(p))
    assert frames_after >= 15  # the agent kept talking through the 300 ms patience window (15 frames)
    assert frames_after < 100  # and then stopped, long before its 10 s (500 frames) utterance ended


async def test_quic_reference_agent_over_webtransport(start_gateway, peers, tmp_path):
    from datetime import datetime, timezone

    from tests.ai_quic.conftest import agent_example
    from trunkline.certs import ensure_certificate

    cert = ensure_certificate(tmp_path / "agent-tls", datetime.now(timezone.utc))
    agent = agent_example.EchoAgentServer(cert.cert_path, cert.key_path, port=0)
    await agent.start()
    try:
        sipp, tap, transport = await tapped_carrier(peers)
        gateway = await start_gateway({**carrier(sipp.port), "media": {"agent_ca_file": str(cert.cert_path)}})
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=AI, ai_quic_url=agent.url)
        await watch.until(call.call_sid, "ANSWERED")
        await asyncio.sleep(0.5)
        spoke_at = asyncio.get_running_loop().time()
        tap.voice = Tone(700.0)  # the caller says a tone; the agent echoes it back to the caller
        detector = ToneDetector(700.0)

        def tone_frames_back() -> int:
            return sum(detector.detect(pcmu_decode(p)) for at, p in tap.sent if at > spoke_at and len(p) == 160)

        # the echoed tone, through PCM16 datagrams: 40 frames of it came back to the caller
        await wait_until(lambda: tone_frames_back() > 40, "the tone echoed by the QUIC agent")
        session = agent.sessions[0]
        job = agent.jobs[0]
        assert job.assign.call_sid == call.call_sid
        assert job.frames_echoed > 20  # caller audio reached the agent as datagrams and went back
        await client.terminate(call.call_sid)
        hangup = await watch.hangup(call.call_sid)
        transport.close()
    finally:
        agent.close()
    assert hangup.status == "COMPLETED" and hangup.packets_received > 20 and session is not None


async def test_caller_dtmf_reaches_the_agent(start_gateway, peers):
    from trunkline.media.dtmf import digit_to_event, telephone_event_payloads
    from trunkline.media.rtp import RtpPacket, build_rtp

    sipp, tap, transport = await tapped_carrier(peers)
    bot = TwilioBot(b"")
    async with serve(bot.handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/media"
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=AI, ai_websocket_url=url)
        await watch.until(call.call_sid, "ANSWERED")
        await asyncio.sleep(0.5)
        tap.pass_echo = False  # the caller's phone now sends its own stream: a key press, RFC 4733
        for n, (payload, marker) in enumerate(telephone_event_payloads(digit_to_event("7"), 800)):
            packet = RtpPacket(payload_type=101, sequence=1000 + n, timestamp=160_000, ssrc=0x5EED, payload=payload, marker=marker)
            tap.transport.sendto(build_rtp(packet), tap.gateway)
            await asyncio.sleep(0.02)
        await wait_until(lambda: bot.events("dtmf"), "the caller's key press at the agent")
        await client.terminate(call.call_sid)
        await watch.hangup(call.call_sid)
    transport.close()
    assert [m["dtmf"]["digit"] for m in bot.events("dtmf")] == ["7"]
    assert bot.events("dtmf")[0]["dtmf"]["track"] == "inbound_track"
