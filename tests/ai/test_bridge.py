"""AgentBridge's pacing against a hand-driven media clock, with real RTP on 127.0.0.1 to a plain socket.

The agent side is a recording stand-in (the end-to-end tests in tests/e2e use real agents); what is
checked here is timing that a real clock makes racy: what goes on the wire at which tick.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Callable, cast

import pytest

from tests.conftest import wait_until
from tests.media_engine.conftest import HOST, arrived_rtp, negotiated, random_pool
from tests.media_engine.fake_loop import FakeLoop
from trunkline.ai.bridge import AgentBridge
from trunkline.ai.events import AgentAudio, AgentEvent
from trunkline.media.g711 import PCMU
from trunkline.media.rtp import RtpPacket, build_rtp
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


@dataclass
class Bridged:
    """A started bridge on a session whose clock only ticks when the test says so."""

    fake: FakeLoop
    session: MediaSession
    carrier: socket.socket
    link: RecordingLink
    bridge: AgentBridge

    async def heard(self) -> list[bytes]:
        """What the carrier received since the last look."""
        return [packet.payload for packet in await arrived_rtp(self.carrier)]


@pytest.fixture
async def bridged():
    fake = FakeLoop()
    session = await MediaSession.open(MediaClock(cast(asyncio.AbstractEventLoop, fake), timer=fake.time), random_pool())
    carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    carrier.bind((HOST, 0))
    carrier.setblocking(False)
    link = RecordingLink()
    bridge = AgentBridge(session, link, on_hangup=lambda: None, on_transfer=lambda to: None,
                         on_closed=lambda reason: None)
    try:
        session.configure(negotiated(carrier.getsockname()[1]))
        bridge.start()
        yield Bridged(fake, session, carrier, link, bridge)
    finally:
        bridge.stop()
        carrier.close()
        session.close()
        await session.wait_closed()


async def test_an_agent_frame_that_misses_its_tick_goes_out_on_arrival_not_a_frame_later(bridged):
    fake, link, bridge = bridged.fake, bridged.link, bridged.bridge
    agent_says = link.on_event
    assert agent_says is not None
    first, second, third = (bytes([k]) * 160 for k in (1, 2, 3))
    agent_says(AgentAudio(first))
    fake.run_next()
    fake.run_next()  # the agent's next frame is late for this tick
    assert await bridged.heard() == [first]
    agent_says(AgentAudio(second))  # no tick in between: it goes out now
    assert await bridged.heard() == [second]
    agent_says(AgentAudio(third))
    fake.run_next()
    assert await bridged.heard() == [third]  # and the pacing carries on from there, nothing queued behind
    assert bridge.queue.queued_frames == 0


async def test_caller_packets_of_30_and_10_ms_reach_the_agent_as_20_ms_frames(bridged):
    speech = bytes(range(256)) * 5
    sizes = [240, 240, 80, 80, 240, 80, 160]  # ms: 30, 30, 10, 10, 30, 10, 20; the clock never ticks here
    offset = 0
    for n, size in enumerate(sizes):
        payload = speech[offset:offset + size]
        packet = RtpPacket(payload_type=0, sequence=n, timestamp=offset, ssrc=0x5EED, payload=payload)
        bridged.carrier.sendto(build_rtp(packet), bridged.session.local_address)
        offset += size
    frames = bridged.link.caller_frames
    await wait_until(lambda: len(frames) == offset // 160, "the caller's audio at the agent")
    assert {len(frame) for frame in frames} == {160}
    assert b"".join(frames) == speech[:offset]


async def test_a_missing_packet_is_20_ms_of_silence_after_the_audio_still_pending(bridged):
    deliver, frames = bridged.session.on_audio, bridged.link.caller_frames
    assert deliver is not None
    deliver(b"\x01" * 240)
    deliver(None)
    silence = PCMU.silence(80)
    assert frames == [b"\x01" * 160, b"\x01" * 80 + silence]
    deliver(b"\x02" * 80)
    assert frames[2:] == [silence + b"\x02" * 80]
    frame = bytes(range(160))
    deliver(frame)  # nothing pending any more: the usual 20 ms payload is passed on as it is
    assert frames[3] is frame
