"""A Pipecat Twilio bot, unchanged, takes a call the gateway places to a SIPp carrier with RTP echo.

The bot is what Pipecat documents for Twilio Media Streams: a FastAPI WebSocket endpoint served by
uvicorn on loopback, ``parse_telephony_websocket`` for the ``start``, ``TwilioFrameSerializer``
(with ``auto_hang_up=False``: it would call Twilio's REST API), ``FastAPIWebsocketTransport`` and
a Pipeline of the transport and one small FrameProcessor, run by a PipelineWorker on a
WorkerRunner (Pipecat 1.3's names for PipelineTask and PipelineRunner, which it deprecates).
"""

from __future__ import annotations

import asyncio
import itertools
import runpy
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("pipecat", reason="pipecat-ai not installed (pip install -e '.[test]')")

import uvicorn  # noqa: E402
from fastapi import FastAPI, WebSocket  # noqa: E402
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, InputDTMFFrame, OutputAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.runner.types import CallData  # noqa: E402
from pipecat.runner.utils import parse_telephony_websocket  # noqa: E402
from pipecat.serializers.twilio import TwilioFrameSerializer  # noqa: E402
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from tests.conftest import wait_until  # noqa: E402
from tests.e2e.calls import carrier, tapped_carrier, watched_client  # noqa: E402
from tests.e2e.test_ai_bridge import AI, TO, loud, tone, tone_share  # noqa: E402
from trunkline.media.dtmf import ToneDetector, digit_to_event, telephone_event_payloads  # noqa: E402
from trunkline.media.g711 import pcmu_decode  # noqa: E402
from trunkline.media.rtp import RtpPacket, build_rtp  # noqa: E402
from trunkline.media_engine.sources import Tone  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

RATE = 8000  # the pipeline runs at the call's rate, so what the bot hears is what the caller sent
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipecat_bot" / "bot.py"


class KeypadBot(FrameProcessor):
    """Listens to the caller and stops talking when the caller presses a key, as a bot would on a
    barge-in: it records the caller's audio and key presses, and answers a key press with an
    interruption, which the Twilio serializer sends as ``clear``."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = bytearray()
        self.digits: list[str] = []
        self.interrupted_at: float | None = None

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.heard += frame.audio  # not passed on: the bot would hear itself again
            return
        if isinstance(frame, InputDTMFFrame):
            self.digits.append(frame.button.value)
            self.interrupted_at = asyncio.get_running_loop().time()
            await self.broadcast_interruption()
        await self.push_frame(frame, direction)


class PipecatBot:
    """The FastAPI app Pipecat's Twilio examples run, with one call's pieces kept for the test."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.app.add_api_websocket_route("/ws", self.websocket)
        self.bot = KeypadBot()
        self.call_data: CallData | None = None
        self.worker: PipelineWorker | None = None
        self.finished = asyncio.Event()

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        _, self.call_data = await parse_telephony_websocket(websocket)
        serializer = TwilioFrameSerializer(
            stream_sid=self.call_data.stream_id,
            call_sid=self.call_data.call_id,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer))
        self.worker = PipelineWorker(
            Pipeline([transport.input(), self.bot, transport.output()]),
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        )
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        await runner.run()
        self.finished.set()

    async def say(self, pcm: bytes) -> None:
        assert self.worker is not None
        await self.worker.queue_frame(OutputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1))


@asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """``app`` under uvicorn on a free loopback port; yields the URL of its ``/ws`` endpoint."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, "uvicorn")
        yield f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/ws"
    finally:
        server.should_exit = True
        await serving


def tone_frames(tap, freq: float) -> int:
    """How many frames the gateway sent the caller carry the tone ``freq``."""
    detector = ToneDetector(freq)
    return sum(detector.detect(pcmu_decode(payload)) for _, payload in tap.sent)


_presses = itertools.count()


async def press(tap, digit: str) -> None:
    """The caller's phone sends a key press, RFC 4733, from the carrier's media address; each press
    is a new event (its own timestamp), further along the same stream."""
    k = next(_presses)
    for n, (payload, marker) in enumerate(telephone_event_payloads(digit_to_event(digit), 800)):
        packet = RtpPacket(payload_type=101, sequence=2000 + 100 * k + n, timestamp=320_000 + 16_000 * k,
                           ssrc=0xD7F, payload=payload, marker=marker)
        tap.transport.sendto(build_rtp(packet), tap.gateway)
        await asyncio.sleep(0.02)


async def test_pipecat_twilio_bot_takes_a_call(start_gateway, peers):
    sipp, tap, transport = await tapped_carrier(peers)
    pipecat = PipecatBot()
    async with served(pipecat.app) as url:
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", call_from="+15550001111", default_app=AI,
                                 ai_websocket_url=url)
        await watch.until(call.call_sid, "ANSWERED")
        await wait_until(lambda: pipecat.worker is not None, "the bot's pipeline")
        bot = pipecat.bot

        # the bot speaks a tone; SIPp echoes it, and the bot hears it back through its serializer
        await pipecat.say(tone(1000, 1.0))
        await wait_until(lambda: tone_share(bytes(bot.heard), 1000) * len(bot.heard) // 320 > 25,
                         "the bot's tone back from the echo")

        # a long utterance, which the caller interrupts with a key press: the DTMF reaches the bot,
        # whose interruption makes the serializer send clear, and the caller hears silence
        await pipecat.say(tone(800, 10.0))
        await wait_until(lambda: tone_frames(tap, 800) > 25, "the long utterance at the caller")
        tap.pass_echo = False  # the caller's phone sends its own stream now
        await press(tap, "5")
        await wait_until(lambda: bot.interrupted_at is not None, "the key press at the bot")
        cleared_at = bot.interrupted_at
        await wait_until(lambda: sum(at > cleared_at for at, _ in tap.sent) >= 50, "a second of the caller leg")

        # the bot ends the call: EndFrame closes its WebSocket, and the gateway hangs up
        await pipecat.worker.queue_frame(EndFrame())
        hangup = await watch.hangup(call.call_sid)
        await asyncio.wait_for(pipecat.finished.wait(), 10)
    transport.close()

    data = pipecat.call_data
    assert (data.call_id, data.from_number, data.to_number) == (call.call_sid, "+15550001111", TO)
    assert data.body["trunk_id"] == "carrier"
    assert bot.digits == ["5"]
    after = [payload for at, payload in tap.sent if at > cleared_at]
    # Pipecat stops sending at once too, so without the clear the two or three frames the gateway had
    # queued would still play; with it, at most the one in flight does, and then nothing of the ten
    # seconds the bot meant to say.
    assert sum(map(loud, after[:10])) <= 1
    assert not any(map(loud, after[10:])), "the long utterance went on after the clear"
    assert hangup.status == "COMPLETED"


async def test_the_example_bot_greets_echoes_and_hangs_up_on_hash(start_gateway, peers):
    example = runpy.run_path(str(EXAMPLE), run_name="pipecat_bot_example")
    sipp, tap, transport = await tapped_carrier(peers)
    async with served(example["app"]) as url:
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=AI, ai_websocket_url=url)
        await watch.until(call.call_sid, "ANSWERED")
        await wait_until(lambda: tone_frames(tap, 440) > 10, "the greeting at the caller")
        tap.pass_echo = False
        await press(tap, "1")  # cuts the greeting short
        tap.voice, tap.pass_echo = Tone(700.0), True  # then the caller talks, and hears it echoed
        await wait_until(lambda: tone_frames(tap, 700) > 25, "the caller's voice echoed")
        tap.pass_echo = False
        await press(tap, "#")
        hangup = await watch.hangup(call.call_sid)
    transport.close()
    assert tone_frames(tap, 440) < 100  # of the greeting's 150 frames
    assert hangup.status == "COMPLETED"
