"""AgentBridge's pacing against a hand-driven media clock, with real RTP on 127.0.0.1 to a plain socket.

The agent side is a recording stand-in (the end-to-end tests in tests/e2e use real agents); what is
checked here is timing that a real clock makes racy: what goes on the wire at which tick.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable, cast

from tests.media_engine.conftest import HOST, arrived_rtp, negotiated, random_pool
from tests.media_engine.fake_loop import FakeLoop
from trunkline.ai.bridge import AgentBridge
from trunkline.ai.events import AgentAudio, AgentEvent
from trunkline.media.g711 import PCMU
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.session import MediaSession


class RecordingLink:
    audio_codec = PCMU

    def __init__(self) -> None:
        self.on_event: Callable[[AgentEvent], None] | None = None
        self.on_closed: Callable[[str], None] | None = None
        self.caller_frames: list[bytes] = []
        self.marks: list[str] = []

    def send_audio(self, frame: bytes) -> None:
        self.caller_frames.append(frame)

    def mark_played(self, name: str) -> None:
        self.marks.append(name)

    def barge_in(self) -> None:
        pass

    def close(self) -> None:
        pass


async def test_an_agent_frame_that_misses_its_tick_goes_out_on_arrival_not_a_frame_later():
    fake = FakeLoop()
    session = await MediaSession.open(MediaClock(cast(asyncio.AbstractEventLoop, fake), timer=fake.time), random_pool())
    carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    carrier.bind((HOST, 0))
    carrier.setblocking(False)

    async def heard() -> list[bytes]:
        return [packet.payload for packet in await arrived_rtp(carrier)]

    link = RecordingLink()
    bridge = AgentBridge(session, link, on_hangup=lambda: None, on_transfer=lambda to: None,
                         on_closed=lambda reason: None)
    try:
        session.configure(negotiated(carrier.getsockname()[1]))
        bridge.start()
        agent_says = link.on_event
        assert agent_says is not None
        first, second, third = (bytes([k]) * 160 for k in (1, 2, 3))
        agent_says(AgentAudio(first))
        fake.run_next()
        fake.run_next()  # the agent's next frame is late for this tick
        assert await heard() == [first]
        agent_says(AgentAudio(second))  # no tick in between: it goes out now
        assert await heard() == [second]
        agent_says(AgentAudio(third))
        fake.run_next()
        assert await heard() == [third]  # and the pacing carries on from there, nothing queued behind
        assert bridge.queue.queued_frames == 0
    finally:
        bridge.stop()
        carrier.close()
        session.close()
        await session.wait_closed()
