"""Audio sources: what a call leg plays, pulled one 20 ms frame of 8 kHz mono PCM16 per clock tick.

Sources are pure objects with no event loop, so the playout rules (re-chunking, overflow, marks,
looping, mixing) are tested without sockets or timing. The clock pulls, sources never push: a source
cannot run ahead of real time, and "played" means exactly "pulled by the clock".

``read()`` returns a 320-byte frame, or None when it has nothing for this tick. None from a source
that is not ``finished`` is a momentary underrun (the session fills it with silence so the RTP
stream stays continuous, or, for a ``live`` source in mid-stream, holds the slot briefly for a late
frame); None from a ``finished`` source means it is done for good.

A source that holds G.711 already (a :class:`StreamQueue` made with a ``codec``: an agent speaking
µ-law) also has ``codec`` and ``read_encoded()``, the same frame as 160 G.711 bytes; a leg playing
it sends those bytes as they are (or through a byte table for the other G.711 law) instead of
decoding to PCM16 and encoding again. ``read()`` still works for anything that wraps it (mixing
in a DTMF tone, a barge mix).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from trunkline.media._audioop import audioop
from trunkline.media.dtmf import ToneGenerator
from trunkline.media.g711 import G711Codec

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FRAME_MS = 1000 * FRAME_SAMPLES // SAMPLE_RATE
FRAME_BYTES = 2 * FRAME_SAMPLES
SILENCE_FRAME = bytes(FRAME_BYTES)
_MAX_TONE_TABLE_FRAMES = 50


class AudioSource(Protocol):
    @property
    def finished(self) -> bool:
        """True once the source will never produce audio again."""

    def read(self) -> bytes | None:
        """The next 20 ms frame (320 bytes), or None for nothing this tick."""


class Silence:
    """Digital silence, for a leg that must keep sending RTP (NAT bindings, peers' RTP timeouts)."""

    __slots__ = ()

    @property
    def finished(self) -> bool:
        return False

    def read(self) -> bytes:
        return SILENCE_FRAME


class Tone:
    """A steady tone or tone pair (``level_dbfs`` per tone), e.g. 1 kHz test tone, 425 Hz ringback.

    A sine costs a Python loop over 160 samples to synthesise, too much per call per tick, so when the
    tone repeats exactly within at most one second of whole frames (any integer frequency does) the
    frames are synthesised once and then replayed; other frequencies are synthesised live.
    """

    __slots__ = ("_generator", "_table", "_index")

    def __init__(self, freqs: float | tuple[float, ...], level_dbfs: float = -10.0) -> None:
        frequencies = freqs if isinstance(freqs, tuple) else (freqs,)
        if not frequencies:
            raise ValueError("a tone needs at least one frequency")
        self._generator = ToneGenerator(frequencies, SAMPLE_RATE, level_dbfs=level_dbfs)
        self._index = 0
        self._table: tuple[bytes, ...] = ()
        period = _repeat_frames(frequencies)
        if period is not None:
            self._table = tuple(self._generator.generate(FRAME_SAMPLES) for _ in range(period))

    @property
    def finished(self) -> bool:
        return False

    def read(self) -> bytes:
        table = self._table
        if not table:
            return self._generator.generate(FRAME_SAMPLES)
        frame = table[self._index]
        self._index = (self._index + 1) % len(table)
        return frame


def _repeat_frames(frequencies: tuple[float, ...]) -> int | None:
    """Fewest whole frames after which every frequency has completed whole cycles, if at most 1 s."""
    for frames in range(1, _MAX_TONE_TABLE_FRAMES + 1):
        cycles = [f * frames * FRAME_SAMPLES / SAMPLE_RATE for f in frequencies]
        if all(abs(c - round(c)) < 1e-9 for c in cycles):
            return frames
    return None


class WavPlayback:
    """A prompt decoded by :func:`trunkline.media.wav.load_wav`, played once or looped (hold music).

    A trailing partial frame is padded with silence rather than dropped, so short prompts are not cut.
    """

    __slots__ = ("loop", "_pcm", "_offset", "_finished")

    def __init__(self, pcm: bytes, loop: bool = False) -> None:
        if len(pcm) % 2:
            raise ValueError("PCM16 audio must have an even number of bytes")
        if loop and not pcm:
            raise ValueError("cannot loop empty audio")
        pad = -len(pcm) % FRAME_BYTES
        self._pcm = pcm + bytes(pad) if pad else pcm
        self.loop = loop
        self._offset = 0
        self._finished = not pcm

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def position_ms(self) -> int:
        return self._offset // (2 * SAMPLE_RATE // 1000)

    def read(self) -> bytes | None:
        if self._finished:
            return None
        start = self._offset
        end = start + FRAME_BYTES
        frame = self._pcm[start:end]
        if end < len(self._pcm):
            self._offset = end
        elif self.loop:
            self._offset = 0
        else:
            self._offset = end
            self._finished = True
        return frame


class StreamQueue:
    """A bounded FIFO of streamed audio (an AI agent's speech) with in-band marks.

    Audio arrives in chunks of any size and is re-chunked into 20 ms frames. Marks ride in the audio
    order; ``on_mark(name)`` fires when the clock pulls past one, that is on the tick after the last
    frame before it was sent, so the agent learns when the listener has actually heard everything up
    to the mark (and can, say, stop expecting an interruption). When more than ``max_frames`` of
    audio is queued, the oldest audio is dropped and counted, keeping the delay to the listener
    bounded if the agent produces faster than real time; marks are never dropped.

    With ``codec`` the audio pushed is G.711 in that law (160 bytes a frame) and stays so until it
    is sent; :meth:`read` decodes a frame for whoever needs PCM16.

    ``live``: the feeder streams in real time (an agent), which the media session reads as "a dry
    tick mid-stream is probably a late frame" (see :meth:`MediaSession.play`). A backlog that a
    hiccup left behind a real-time feeder is not trimmed: tried, it dropped audio wherever the
    feeder's timing depends on what it hears (an agent echoing the caller, one pacing itself by
    marks), which starved the loop into a gap and refilled it, over and over.
    """

    __slots__ = ("max_frames", "on_mark", "dropped_frames", "codec", "live", "_frame_bytes", "_silence",
                 "_items", "_frames", "_partial")

    def __init__(
        self,
        max_frames: int = 500,
        on_mark: Callable[[str], None] | None = None,
        codec: G711Codec | None = None,
        *,
        live: bool = False,
    ) -> None:
        if max_frames <= 0:
            raise ValueError("max_frames must be positive")
        self.max_frames = max_frames
        self.on_mark = on_mark
        self.dropped_frames = 0
        self.codec = codec
        self.live = live
        self._frame_bytes = FRAME_SAMPLES if codec is not None else FRAME_BYTES
        self._silence = codec.silence(FRAME_SAMPLES) if codec is not None else SILENCE_FRAME
        self._items: deque[bytes | str] = deque()
        self._frames = 0
        self._partial = bytearray()

    @property
    def finished(self) -> bool:
        return False

    @property
    def queued_frames(self) -> int:
        """Whole frames waiting to be played (a partial frame still being filled is not counted)."""
        return self._frames

    @property
    def pending_marks(self) -> int:
        return sum(isinstance(item, str) for item in self._items)

    def push(self, audio: bytes) -> None:
        """Queue audio (PCM16, or G.711 in :attr:`codec`) of any length."""
        partial = self._partial
        size = self._frame_bytes
        if not partial and len(audio) == size:  # an agent streaming 20 ms chunks: no re-chunking
            self._items.append(audio)
            self._frames += 1
            if self._frames > self.max_frames:
                self._drop_oldest(self._frames - self.max_frames)
            return
        partial += audio
        whole = len(partial) - len(partial) % size
        if not whole:
            return
        view = memoryview(partial)
        append = self._items.append
        for start in range(0, whole, size):
            append(bytes(view[start : start + size]))
        view.release()
        del partial[:whole]
        self._frames += whole // size
        if self._frames > self.max_frames:
            self._drop_oldest(self._frames - self.max_frames)

    def flush(self) -> None:
        """Pad a partial frame with silence and queue it, e.g. at the end of an utterance."""
        if self._partial:
            self.push(self._silence[: self._frame_bytes - len(self._partial)])

    def push_mark(self, name: str) -> None:
        """Queue a mark after all audio pushed so far (a partial frame is padded and queued first)."""
        self.flush()
        self._items.append(name)

    def clear(self) -> list[str]:
        """Drop everything queued at once (barge-in); returns the marks that will now never fire."""
        marks = [item for item in self._items if isinstance(item, str)]
        self._items.clear()
        self._frames = 0
        self._partial.clear()
        return marks

    def read_encoded(self) -> bytes | None:
        """The next frame as queued (G.711 in :attr:`codec`, or PCM16 without one)."""
        items = self._items
        while items and isinstance(items[0], str):
            name = items.popleft()
            if self.on_mark is not None:
                self.on_mark(name)  # type: ignore[arg-type]
        if not items:
            return None
        self._frames -= 1
        return items.popleft()  # type: ignore[return-value]

    def read(self) -> bytes | None:
        frame = self.read_encoded()
        codec = self.codec
        return frame if frame is None or codec is None else codec.decode(frame)

    def _drop_oldest(self, count: int) -> None:
        items = self._items
        marks: list[bytes | str] = []
        while count:
            item = items.popleft()
            if isinstance(item, str):
                marks.append(item)
            else:
                count -= 1
                self._frames -= 1
                self.dropped_frames += 1
        # Marks that stood among the dropped audio keep their place at the front of the queue.
        items.extendleft(reversed(marks))


class Mixer:
    """Sums several sources into one (clipping at full scale), e.g. a supervisor barging into a call.

    Sources that finish are removed; the mix itself never finishes, because parties come and go
    while the leg it feeds stays up. A tick where no source has audio yields None.
    """

    __slots__ = ("_sources",)

    def __init__(self, *sources: AudioSource) -> None:
        self._sources: list[AudioSource] = list(sources)

    @property
    def finished(self) -> bool:
        return False

    @property
    def sources(self) -> tuple[AudioSource, ...]:
        return tuple(self._sources)

    def add(self, source: AudioSource) -> None:
        self._sources.append(source)

    def remove(self, source: AudioSource) -> None:
        self._sources.remove(source)

    def read(self) -> bytes | None:
        frames: list[bytes] = []
        done = False
        for source in self._sources:
            frame = source.read()
            if frame is None:
                done = done or source.finished
            else:
                frames.append(frame)
        if done:
            self._sources = [s for s in self._sources if not s.finished]
        if len(frames) < 2:
            return frames[0] if frames else None
        # Sum at 32 bits with 8 bits of headroom and clip once at the end: clipping after every
        # pairwise 16-bit add would make the result depend on the order of the sources.
        total = _widen(frames[0])
        for frame in frames[1:]:
            total = audioop.add(total, _widen(frame), 4)
        return audioop.lin2lin(audioop.mul(total, 4, _HEADROOM), 4, 2)


_HEADROOM = 256.0


def _widen(frame: bytes) -> bytes:
    """PCM16 as 32-bit samples scaled to leave 8 bits of headroom (up to 256 sources add exactly)."""
    return audioop.mul(audioop.lin2lin(frame, 2, 4), 4, 1.0 / _HEADROOM)

