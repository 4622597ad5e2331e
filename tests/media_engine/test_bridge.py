"""Bridging two legs: pure frame flow with stand-in legs, then a third party's tone over real sockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from tests.media_engine.conftest import negotiated, wait_until
from trunkline.media.dtmf import ToneDetector
from trunkline.media_engine.bridge import Bridge
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import AudioSource, Silence, Tone

Opener = Callable[..., Awaitable[MediaSession]]


class Leg:
    """Stands in for a MediaSession: what the bridge touches, plus a tick like the session's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source: AudioSource | None = None
        self.on_audio: Callable[[bytes | None], None] | None = None
        self.inbound: list[bytes | None] = []
        self.sent: list[bytes | None] = []

    def play(self, source: AudioSource | None) -> AudioSource | None:
        previous, self.source = self.source, source
        return previous

    def tick(self) -> None:
        if self.on_audio is not None:
            self.on_audio(self.inbound.pop(0) if self.inbound else None)
        self.sent.append(self.source.read() if self.source is not None else None)


def legs() -> tuple[Leg, Leg, Bridge]:
    a, b = Leg("a"), Leg("b")
    return a, b, Bridge(cast(MediaSession, a), cast(MediaSession, b))


def test_a_leg_ticked_first_passes_its_frame_in_the_same_tick():
    a, b, _ = legs()
    a.inbound = [b"1", b"2", b"3"]
    for _ in range(3):
        a.tick()
        b.tick()
    assert b.sent == [b"1", b"2", b"3"]


def test_a_leg_ticked_second_adds_exactly_one_tick():
    a, b, _ = legs()
    b.inbound = [b"1", b"2", b"3"]
    for _ in range(4):
        a.tick()
        b.tick()
    assert a.sent == [None, b"1", b"2", b"3"]


def test_a_frame_is_played_once_and_gaps_stay_gaps():
    a, b, _ = legs()
    a.inbound = [b"1", None, b"3"]
    for _ in range(4):
        a.tick()
        b.tick()
    assert b.sent == [b"1", None, b"3", None]


def test_unbridge_restores_previous_or_given_sources_and_callbacks():
    a, b = Leg("a"), Leg("b")
    hold_music, tap = Silence(), (lambda pcm: None)
    a.play(hold_music)
    a.on_audio = tap
    bridge = Bridge(cast(MediaSession, a), cast(MediaSession, b))
    assert a.source is bridge.into_a and b.source is bridge.into_b
    goodbye = Tone(425.0)
    bridge.unbridge(source_b=goodbye)
    assert a.source is hold_music and a.on_audio is tap
    assert b.source is goodbye and b.on_audio is None
    bridge.unbridge(source_a=None)  # already unbridged: no effect
    assert a.source is hold_music


async def test_bridge_carries_a_third_partys_tone_both_ways(open_session: Opener):
    # x <-> a  (bridged)  b <-> y
    x, a, b, y = [await open_session() for _ in range(4)]
    for one, other in ((x, a), (b, y)):
        one.configure(negotiated(other.local_address[1]))
        other.configure(negotiated(one.local_address[1]))
    a.play(Silence())
    bridge = Bridge(a, b)
    y_hears, x_hears = [], []
    y_detect, x_detect = ToneDetector(1000.0), ToneDetector(1400.0)
    y.on_audio = lambda pcm: y_hears.append(pcm is not None and y_detect.detect(pcm))
    x.on_audio = lambda pcm: x_hears.append(pcm is not None and x_detect.detect(pcm))
    x.play(Tone(1000.0))
    y.play(Tone(1400.0))
    await wait_until(lambda: sum(y_hears) >= 10 and sum(x_hears) >= 10)
    bridge.unbridge()
    assert isinstance(a.source, Silence) and b.source is None
    assert a.on_audio is None and b.on_audio is None
