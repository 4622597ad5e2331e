"""Adaptive jitter buffer for inbound audio, driven by the shared 20 ms media clock.

Packets go in as they arrive (:meth:`JitterBuffer.push`); one frame comes out per clock tick
(:meth:`JitterBuffer.pop`). ``None`` from ``pop`` means "no audio for this tick" and the caller
conceals or plays silence; the buffer never fabricates audio itself because concealment depends on
the codec and on what the consumer (an AI agent, a recorder) wants.

Playout is by sequence number, one packet per tick, which assumes the negotiated ptime equals the
tick. Delay adapts between ``min_delay_ms`` and ``max_delay_ms``: the target is the recent peak
of each packet's transit time above the fastest recent transit, plus one frame for tick phase.
The peak rises immediately and decays slowly, so the buffer grows on the first bad burst (by
re-buffering after an underrun) and shrinks, one dropped frame at a time, only once it has held
more than two frames beyond the target.
"""

from __future__ import annotations

import math

_SEQ_HALF = 0x8000
_SEQ_MOD = 0x10000
_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
_PLAYED_BITS = 64
_PLAYED_MASK = (1 << _PLAYED_BITS) - 1
_RESYNC_JUMP = 1000
"""A sequence jump this far ahead of playout is a restarted stream, not a burst to buffer."""
_BASE_WINDOW = 250
"""Packets per half of the two-bucket minimum-transit window (about 5 s at 50 packets/s)."""
_PEAK_DECAY = 1.0 / 256.0
_SHRINK_SLACK_FRAMES = 2


class JitterBuffer:
    __slots__ = (
        "frame_ms",
        "clock_rate",
        "min_delay_ms",
        "max_delay_ms",
        "capacity",
        "received",
        "played",
        "duplicates",
        "late",
        "overflow",
        "concealed",
        "underruns",
        "dropped",
        "resyncs",
        "_slots",
        "_next",
        "_highest",
        "_playing",
        "_buffering_since",
        "_played_mask",
        "_ts_ref",
        "_base_current",
        "_base_previous",
        "_base_count",
        "_peak",
    )

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_ms: int = 20,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
        capacity: int | None = None,
    ) -> None:
        if not 0 < min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 < min_delay_ms <= max_delay_ms")
        self.clock_rate = clock_rate
        self.frame_ms = frame_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.capacity = capacity if capacity is not None else 2 * math.ceil(max_delay_ms / frame_ms)
        self.received = 0
        self.played = 0
        self.duplicates = 0
        self.late = 0
        self.overflow = 0
        self.concealed = 0
        self.underruns = 0
        self.dropped = 0
        self.resyncs = 0
        self._clear()

    def _clear(self) -> None:
        self._slots: dict[int, bytes] = {}
        self._next: int | None = None
        self._highest: int | None = None
        self._playing = False
        self._buffering_since: float | None = None
        self._played_mask = 0
        self._ts_ref: int | None = None
        self._base_current = math.inf
        self._base_previous = math.inf
        self._base_count = 0
        self._peak = 0.0

    def reset(self) -> None:
        """Drop all buffered audio and timing history (new SSRC, hold/resume); counters are kept."""
        self._clear()

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def target_delay_ms(self) -> float:
        wanted = self._peak * 1000.0 + self.frame_ms
        wanted = math.ceil(wanted / self.frame_ms - 1e-9) * self.frame_ms
        return float(min(self.max_delay_ms, max(self.min_delay_ms, wanted)))

    @property
    def buffered_ms(self) -> float:
        """Audio span from the next frame to play through the newest packet held, gaps included."""
        if not self._slots or self._highest is None:
            return 0.0
        start = self._next if self._next is not None else min(self._slots)
        return float((self._highest - start + 1) * self.frame_ms)

    def _observe_transit(self, timestamp: int, arrival_time: float) -> None:
        if self._ts_ref is None:
            self._ts_ref = timestamp
        offset = (timestamp - self._ts_ref) % _TS_MOD
        if offset >= _TS_HALF:
            offset -= _TS_MOD
        transit = arrival_time - offset / self.clock_rate
        if transit < self._base_current:
            self._base_current = transit
        self._base_count += 1
        if self._base_count >= _BASE_WINDOW:
            # Two buckets: the floor follows clock drift within two windows without scanning history.
            self._base_previous = self._base_current
            self._base_current = transit
            self._base_count = 0
        # Capped at the largest delay we would ever use, so a one-off step (a re-route, a stream
        # restarted without reset) cannot pin the target at the maximum for minutes while it decays.
        deviation = min(transit - min(self._base_current, self._base_previous), self.max_delay_ms / 1000.0)
        if deviation > self._peak:
            self._peak = deviation
        else:
            self._peak += (deviation - self._peak) * _PEAK_DECAY

    def push(self, seq: int, timestamp: int, payload: bytes, arrival_time: float) -> bool:
        """Offer an arriving packet; False if it was dropped as duplicate or too late to play."""
        highest = self._highest
        if highest is None:
            ext = seq
        else:
            ext = highest + ((seq - highest + _SEQ_HALF) % _SEQ_MOD) - _SEQ_HALF
        nxt = self._next
        if nxt is not None and abs(ext - nxt) >= _RESYNC_JUMP:
            self.resyncs += 1
            self._clear()
            nxt = None
            ext = seq
        if nxt is not None and ext < nxt:
            back = nxt - 1 - ext
            if back < _PLAYED_BITS and self._played_mask >> back & 1:
                self.duplicates += 1
            else:
                self.late += 1
                self._observe_transit(timestamp, arrival_time)
            return False
        if ext in self._slots:
            self.duplicates += 1
            return False
        self._observe_transit(timestamp, arrival_time)
        self.received += 1
        if not self._slots and not self._playing and self._buffering_since is None:
            self._buffering_since = arrival_time
        self._slots[ext] = payload
        if highest is None or ext > highest:
            self._highest = ext
        self._enforce_capacity(ext)
        return True

    def _enforce_capacity(self, newest: int) -> None:
        start = self._next if self._next is not None else min(self._slots)
        while newest - start >= self.capacity:
            if self._slots.pop(start, None) is not None:
                self.overflow += 1
                self._advance(True)
            else:
                self._advance(False)
            start += 1
            if self._next is None:
                self._next = start

    def _advance(self, had_packet: bool) -> None:
        if self._next is not None:
            self._next += 1
        self._played_mask = ((self._played_mask << 1) | had_packet) & _PLAYED_MASK

    def pop(self, now: float) -> bytes | None:
        """The payload for this tick, or None for a gap, an underrun or while (re)buffering."""
        if not self._playing:
            if not self._slots:
                return None
            target = self.target_delay_ms
            waited = self._buffering_since is not None and (now - self._buffering_since) * 1000.0 >= target
            if self.buffered_ms < target and not waited:
                return None
            self._playing = True
            self._buffering_since = None
            if self._next is None:
                self._next = min(self._slots)
        nxt = self._next
        assert nxt is not None
        payload = self._slots.pop(nxt, None)
        if payload is None:
            if self._slots:
                self.concealed += 1
                self._advance(False)
            else:
                # Nothing at all to play: re-buffer up to the (likely grown) target before resuming.
                self.underruns += 1
                self._playing = False
            return None
        self.played += 1
        self._advance(True)
        if self._slots and self.buffered_ms > self.target_delay_ms + _SHRINK_SLACK_FRAMES * self.frame_ms:
            # Trimming skips the oldest frame; if that frame is missing, skipping it costs nothing.
            trimmed = self._slots.pop(self._next, None) is not None
            self.dropped += trimmed
            self._advance(trimmed)
        return payload


class ReorderBuffer:
    """Inbound audio for a consumer that wants every frame as early as possible (an AI agent).

    Where :class:`JitterBuffer` holds audio back so a listener hears it at an even pace, this one
    holds back only what arrives out of order: a packet that is next in sequence is handed over the
    moment it arrives (:meth:`push` returns it), so the consumer sees the network's timing with no
    buffering delay and no wait for the media clock. A packet that arrives ahead of a missing one
    waits until the missing one is overdue, i.e. ``wait_ms`` past when the stream's own pace says it
    should have come (three times :attr:`jitter`, at least half a frame, at most ``max_wait_ms``);
    then the gap is handed over as ``None`` (a lost frame) and the waiting audio follows. The owner
    keeps :attr:`jitter` current with the RFC 3550 interarrival jitter its receive statistics
    already compute, rather than this buffer computing it a second time per packet.

    While nothing arrives at all (silence suppression, hold, a dead peer), :meth:`tick` hands over
    one ``None`` per clock tick, so the consumer still gets 50 frames a second; a late packet is then
    still delivered, a frame late, rather than lost.
    """

    __slots__ = (
        "frame_ms",
        "bytes_per_ms",
        "max_wait_ms",
        "received",
        "delivered",
        "duplicates",
        "late",
        "concealed",
        "idle_frames",
        "resyncs",
        "jitter",
        "_held",
        "_next",
        "_highest",
        "_anchor_time",
        "_anchor_ext",
        "_covered",
        "_fresh",
        "_packet_bytes",
    )

    def __init__(self, *, frame_ms: int = 20, max_wait_ms: int = 200, bytes_per_ms: int = 8) -> None:
        if max_wait_ms < frame_ms // 2:
            raise ValueError("max_wait_ms must be at least half a frame")
        self.frame_ms = frame_ms
        """The stream's packet time, learnt from the payloads (``bytes_per_ms``: 8 for G.711): a carrier
        may packetise at 10, 30 or 60 ms, and a packet is overdue by its own pace, not the clock's."""
        self.bytes_per_ms = bytes_per_ms
        self._packet_bytes = frame_ms * bytes_per_ms
        self.max_wait_ms = max_wait_ms
        self.received = 0
        self.delivered = 0
        self.duplicates = 0
        self.late = 0
        self.concealed = 0
        """Missing frames given up on while later audio was waiting."""
        self.idle_frames = 0
        """Ticks filled with ``None`` because nothing arrived at all."""
        self.resyncs = 0
        self.jitter = 0.0
        """Interarrival jitter of the stream, in seconds."""
        self._clear()

    def _clear(self) -> None:
        self._held: dict[int, bytes] = {}
        self._next: int | None = None
        self._highest: int | None = None
        self._anchor_time = 0.0
        self._anchor_ext = 0
        self._covered = 0
        self._fresh = False  # handed something over since the last tick

    def reset(self) -> None:
        """Forget the stream (new SSRC, re-INVITE); counters are kept."""
        self._clear()

    def __len__(self) -> int:
        return len(self._held)

    @property
    def wait_ms(self) -> float:
        """How long past its due time a missing frame is waited for."""
        return min(float(self.max_wait_ms), max(self.frame_ms / 2, 3000.0 * self.jitter))

    def push(self, seq: int, payload: bytes, now: float) -> list[bytes | None]:
        """Offer an arriving packet; returns the frames that can be handed over now, in order."""
        if len(payload) != self._packet_bytes:
            self._packet_bytes = len(payload)
            self.frame_ms = max(1, len(payload) // self.bytes_per_ms)
        highest = self._highest
        ext = seq if highest is None else highest + ((seq - highest + _SEQ_HALF) % _SEQ_MOD) - _SEQ_HALF
        nxt = self._next
        if nxt is not None and abs(ext - nxt) >= _RESYNC_JUMP:
            self.resyncs += 1
            self._clear()
            nxt = highest = None
            ext = seq
        if nxt is None:
            self._next = nxt = ext
        if ext == nxt and not self._held:
            # The usual packet, next in sequence with nothing waiting: what _release would do, directly.
            self.received += 1
            self.delivered += 1
            if highest is None or ext > highest:
                self._highest = ext
            self._anchor_time, self._anchor_ext = now, ext
            self._next = ext + 1
            self._covered = 0
            self._fresh = True
            return [payload]
        if ext < nxt:
            self.late += 1
            return []
        if ext in self._held:
            self.duplicates += 1
            return []
        self.received += 1
        self._held[ext] = payload
        if highest is None or ext > highest:
            self._highest = ext
        if ext == nxt:
            # The stream's pace is judged from packets that came in order: one that overtook a missing
            # packet arrived early, and would make the missing one look overdue too soon.
            self._anchor_time, self._anchor_ext = now, ext
        return self._release(now)

    def tick(self, now: float) -> list[bytes | None]:
        """The clock's turn: gaps that have become overdue, or one ``None`` if the stream is silent."""
        if self._held:
            return self._release(now)
        if self._fresh:  # the stream is flowing: its next frame cannot be overdue yet
            self._fresh = False
            return []
        if self._next is None or now >= self._due(self._next):
            self.idle_frames += 1
            self._covered += 1
            return [None]
        return []

    def _due(self, ext: int) -> float:
        """When frame ``ext`` is overdue: a frame's time after the last in-order arrival per frame
        between them, plus the wait."""
        return self._anchor_time + ((ext - self._anchor_ext) * self.frame_ms + self.wait_ms) / 1000.0

    def _release(self, now: float) -> list[bytes | None]:
        out: list[bytes | None] = []
        held = self._held
        nxt = self._next
        assert nxt is not None
        while held:
            payload = held.pop(nxt, None)
            if payload is not None:
                out.append(payload)
                self.delivered += 1
                self._covered = 0
            elif self._covered:
                self._covered -= 1  # the frame's time already went out as an idle None
            elif now >= self._due(nxt):
                first = min(held)
                if first - nxt > self.max_wait_ms // self.frame_ms:
                    # A jump too long to fill frame by frame (a restarted stream): carry on from there.
                    self.resyncs += 1
                    nxt = first
                    continue
                out.append(None)
                self.concealed += 1
            else:
                break
            nxt += 1
        self._next = nxt
        if out:
            self._fresh = True
        return out
