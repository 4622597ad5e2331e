"""A Pipecat bot for Trunkline's Twilio Media Streams bridge, with no cloud services: an echo test.

It answers with a three-second tone the caller can cut short with any key, then plays the caller's
own voice back; ``#`` ends the call. The wiring is the one Pipecat documents for Twilio, unchanged:
a FastAPI WebSocket endpoint, ``parse_telephony_websocket``, ``TwilioFrameSerializer`` and
``FastAPIWebsocketTransport``. Only ``auto_hang_up=False`` differs, because Pipecat's default hang-up
calls Twilio's REST API; here the bot ends the call by closing its WebSocket (its EndFrame does
that), which Trunkline takes as a hang-up.

    python examples/pipecat_bot/bot.py --port 8765
"""

from __future__ import annotations

import argparse
import math
import struct

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    ClientConnectedFrame,
    EndWorkerFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

RATE = 8000  # the call's own rate: no resampling anywhere


def tone(freq: float, seconds: float, level: float = 0.3) -> bytes:
    n = int(seconds * RATE)
    return struct.pack(f"<{n}h", *(int(32767 * level * math.sin(2 * math.pi * freq * i / RATE)) for i in range(n)))


class EchoTest(FrameProcessor):
    """Greets with a tone, then echoes the caller. A key interrupts the greeting; ``#`` hangs up."""

    def __init__(self) -> None:
        super().__init__()
        self.greeting = False

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ClientConnectedFrame):
            await self.push_frame(frame, direction)
            self.greeting = True
            await self.push_frame(OutputAudioRawFrame(audio=tone(440, 3.0), sample_rate=RATE, num_channels=1))
        elif isinstance(frame, InputAudioRawFrame):
            if not self.greeting:  # during the greeting the caller would hear themselves a greeting late
                await self.push_frame(OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                                          num_channels=frame.num_channels))
        elif isinstance(frame, InputDTMFFrame):
            logger.info(f"caller pressed {frame.button.value}")
            if frame.button.value == "#":
                await self.push_frame(EndWorkerFrame())  # flushes what is queued, then closes the WebSocket
            elif self.greeting:
                self.greeting = False
                await self.broadcast_interruption()  # the serializer sends Twilio's clear
        else:
            if isinstance(frame, BotStoppedSpeakingFrame):
                self.greeting = False
            await self.push_frame(frame, direction)


app = FastAPI()


@app.websocket("/ws")
async def media_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    _, call = await parse_telephony_websocket(websocket)  # reads Twilio's connected and start
    logger.info(f"call {call.call_id} from {call.from_number} to {call.to_number}; parameters {call.body}")
    serializer = TwilioFrameSerializer(
        stream_sid=call.stream_id,
        call_sid=call.call_id,
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
        audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer))
    worker = PipelineWorker(
        Pipeline([transport.input(), EchoTest(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, websocket) -> None:
        await worker.cancel()  # the caller hung up: Trunkline sent stop and closed the WebSocket

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
