"""Joining two call legs: each leg's inbound audio becomes the other's outbound source.

The join works through the legs' own ``on_audio`` callbacks and sources rather than a participant
of its own, so a bridged frame costs one attribute store and one read. Each direction is a one-frame
slot written when one leg's tick takes a frame from its jitter buffer and read when the other leg's
tick pulls its source; the clock ticks both legs every interval, so a frame waits at most one tick
(none if the writing leg is ticked first).
"""

from __future__ import annotations

import enum

from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import AudioSource


class _Keep(enum.Enum):
    PREVIOUS = enum.auto()


PREVIOUS = _Keep.PREVIOUS
"""For :meth:`Bridge.unbridge`: give a leg back the source it played before the bridge."""


class BridgeFeed:
    """One direction of a bridge: the far leg's latest inbound frame, handed out once.

    A slot, not a queue: if the writer gets two ticks ahead (only when the clock's participant order
    changes) the older frame is replaced, so the delay can never build up. A gap (None) stays a
    gap, which the playing leg fills with silence.
    """

    __slots__ = ("_frame",)

    def __init__(self) -> None:
        self._frame: bytes | None = None

    @property
    def finished(self) -> bool:
        return False

    def put(self, pcm: bytes | None) -> None:
        self._frame = pcm

    def read(self) -> bytes | None:
        frame = self._frame
        self._frame = None
        return frame


class Bridge:
    """Two-way audio between legs ``a`` and ``b``, live from construction until :meth:`unbridge`.

    The legs' sources and ``on_audio`` callbacks are taken over and given back on unbridge.
    :attr:`into_a` and :attr:`into_b` are the feeds each leg plays, so a caller can wrap one in a
    :class:`~trunkline.media_engine.sources.Mixer` (e.g. ``a.play(Mixer(bridge.into_a, supervisor))``).
    """

    def __init__(self, a: MediaSession, b: MediaSession) -> None:
        if a is b:
            raise ValueError("cannot bridge a leg to itself")
        self.a = a
        self.b = b
        self.into_a = BridgeFeed()
        self.into_b = BridgeFeed()
        self._saved = (a.source, a.on_audio, b.source, b.on_audio)
        self.active = True
        a.on_audio = self.into_b.put
        b.on_audio = self.into_a.put
        a.play(self.into_a)
        b.play(self.into_b)

    def unbridge(
        self,
        source_a: AudioSource | None | _Keep = PREVIOUS,
        source_b: AudioSource | None | _Keep = PREVIOUS,
    ) -> None:
        """Stop the flow both ways and restore each leg's ``on_audio``; each leg then plays the given
        source, or by default what it played before. Idempotent."""
        if not self.active:
            return
        self.active = False
        previous_a, on_audio_a, previous_b, on_audio_b = self._saved
        self.a.on_audio = on_audio_a
        self.b.on_audio = on_audio_b
        self.a.play(previous_a if source_a is PREVIOUS else source_a)
        self.b.play(previous_b if source_b is PREVIOUS else source_b)
