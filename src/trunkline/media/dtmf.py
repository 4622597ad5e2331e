"""DTMF both ways: RFC 4733 telephone-events in RTP, and in-band tones found with Goertzel filters.

Trunks signal digits either as telephone-event packets (preferred, lossless) or, when that was not
negotiated, as audio tones; we handle both so a caller's key press reaches the agent either way,
and generate both so the agent can press keys on an IVR that listens for either.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import deque
from dataclasses import dataclass

from trunkline.media._audioop import audioop
from trunkline.media.errors import MediaError
from trunkline.media.rtp import RtpSender

DTMF_DIGITS = "0123456789*#ABCD"
_EVENT_FOR_DIGIT = {d: i for i, d in enumerate(DTMF_DIGITS)}
_EVENT = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF
_END_REPEATS = 3
_BIG_ENDIAN = sys.byteorder == "big"

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_FULL_SCALE_SINE_POWER = 32768.0 * 32768.0 / 2.0
_FREQUENCIES = {
    key: (ROW_FREQUENCIES[r], COLUMN_FREQUENCIES[c]) for r, keys in enumerate(_KEYPAD) for c, key in enumerate(keys)
}


def digit_to_event(digit: str) -> int:
    try:
        return _EVENT_FOR_DIGIT[digit.upper()]
    except KeyError:
        raise MediaError(f"{digit!r} is not a DTMF digit") from None


def event_to_digit(event: int) -> str | None:
    """The digit for a DTMF event code, or None for the non-DTMF events RFC 4734 defines."""
    return DTMF_DIGITS[event] if 0 <= event < len(DTMF_DIGITS) else None


def digit_frequencies(digit: str) -> tuple[float, float]:
    """The (row, column) tone pair of a keypad digit."""
    return _FREQUENCIES[DTMF_DIGITS[digit_to_event(digit)]]


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 payload. ``volume`` is the power level in -dBm0 (0..63); ``duration`` is in samples."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)


def encode_telephone_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    if not 0 <= event <= 255 or not 0 <= volume <= 63 or not 0 <= duration <= _MAX_DURATION:
        raise MediaError("telephone-event field out of range")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


def decode_telephone_event(payload: bytes) -> TelephoneEvent:
    """Decode the first (normally only) event block; the reserved bit is ignored as RFC 4733 asks."""
    if len(payload) < _EVENT.size:
        raise MediaError(f"telephone-event payload of {len(payload)} bytes, need 4")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A key press as received: the event's RTP start timestamp identifies it; duration in samples."""

    digit: str
    timestamp: int
    duration: int


class DtmfReceiver:
    """Turns telephone-event packets into exactly one :class:`DtmfDigit` per key press.

    An event is identified by its RTP timestamp: every update and all three end packets repeat it.
    A digit is reported when its first end packet arrives, or (``emit_on_start``) on its first
    packet, which is quicker but reports before the duration is known. If every end packet is lost
    the digit is still reported, either when the next event starts or by :meth:`poll` once no packet
    has arrived for ``timeout`` seconds. Recently finished timestamps are remembered so late
    retransmissions are ignored rather than reported again.
    """

    __slots__ = ("timeout", "emit_on_start", "_current", "_finished")

    def __init__(self, *, timeout: float = 0.5, emit_on_start: bool = False) -> None:
        self.timeout = timeout
        self.emit_on_start = emit_on_start
        # (timestamp, event, duration, last packet time, already reported)
        self._current: tuple[int, int, int, float, bool] | None = None
        self._finished: deque[int] = deque(maxlen=16)

    def feed(self, timestamp: int, payload: bytes, now: float) -> list[DtmfDigit]:
        """Account one telephone-event packet; returns the digits it completes (usually none)."""
        ev = decode_telephone_event(payload)
        if timestamp in self._finished or event_to_digit(ev.event) is None:
            return []
        out: list[DtmfDigit] = []
        current = self._current
        if current is not None and current[0] != timestamp:
            self._finish(out)
            current = None
        if current is None:
            reported = self.emit_on_start
            if reported:
                out.append(DtmfDigit(DTMF_DIGITS[ev.event], timestamp, ev.duration))
            current = (timestamp, ev.event, ev.duration, now, reported)
        self._current = (timestamp, current[1], max(current[2], ev.duration), now, current[4])
        if ev.end:
            self._finish(out)
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        """Report an event whose end packets never came; call it from the media tick."""
        if self._current is None:
            return []
        out: list[DtmfDigit] = []
        if now - self._current[3] >= self.timeout:
            self._finish(out)
        return out

    def _finish(self, out: list[DtmfDigit]) -> None:
        current = self._current
        if current is None:
            return
        timestamp, event, duration, _, reported = current
        if not reported:
            out.append(DtmfDigit(DTMF_DIGITS[event], timestamp, duration))
        self._finished.append(timestamp)
        self._current = None


def telephone_event_payloads(
    event: int, duration: int, *, frame_samples: int = 160, volume: int = 10
) -> list[tuple[bytes, bool]]:
    """The ``(payload, marker)`` sequence for one event of ``duration`` samples, one per frame.

    Updates report the duration so far every frame; the final duration goes out in three end
    packets (RFC 4733 2.5.1.4) so one or two can be lost. Only the first packet has the marker.
    """
    if not 0 < duration <= _MAX_DURATION:
        raise MediaError(f"event duration must be 1..{_MAX_DURATION} samples")
    frames = max(1, math.ceil(duration / frame_samples))
    out = [(encode_telephone_event(event, False, volume, k * frame_samples), False) for k in range(1, frames)]
    out.extend([(encode_telephone_event(event, True, volume, duration), False)] * _END_REPEATS)
    out[0] = (out[0][0], True)
    return out


class DtmfSender:
    """Sends queued digits as telephone-events through an :class:`RtpSender`, one packet per tick.

    Call :meth:`tick` on every media tick: it returns the packet to send, or None when the tick is
    free for audio (no digit pending, or the pause between digits). Every tick it consumes also
    advances the sender's media clock, so audio resumes with a timestamp that matches real time.
    """

    __slots__ = ("rtp", "payload_type", "volume", "clock_rate", "_pending", "_packets", "_index", "_event_ts", "_gap")

    def __init__(self, rtp: RtpSender, payload_type: int = 101, *, volume: int = 10, clock_rate: int = 8000) -> None:
        self.rtp = rtp
        self.payload_type = payload_type
        self.volume = volume
        self.clock_rate = clock_rate
        self._pending: deque[tuple[int, int, int]] = deque()
        self._packets: list[tuple[bytes, bool]] = []
        self._index = 0
        self._event_ts = 0
        self._gap = 0

    @property
    def active(self) -> bool:
        return bool(self._pending) or self._index < len(self._packets) or self._gap > 0

    def send(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Queue digits; each lasts ``duration_ms`` and is followed by ``gap_ms`` of audio."""
        samples = duration_ms * self.clock_rate // 1000
        if not 0 < samples <= _MAX_DURATION:
            raise MediaError(f"DTMF duration {duration_ms} ms does not fit a telephone-event")
        frame = self.rtp.samples_per_frame
        gap_ticks = math.ceil(gap_ms * self.clock_rate / 1000 / frame)
        for d in digits:
            self._pending.append((digit_to_event(d), samples, gap_ticks))

    def tick(self) -> bytes | None:
        if self._index >= len(self._packets):
            if self._gap > 0:
                self._gap -= 1
                return None
            if not self._pending:
                return None
            event, samples, self._gap = self._pending.popleft()
            self._packets = telephone_event_payloads(
                event, samples, frame_samples=self.rtp.samples_per_frame, volume=self.volume
            )
            self._index = 0
            self._event_ts = self.rtp.timestamp
        payload, marker = self._packets[self._index]
        self._index += 1
        packet = self.rtp.packetize_event(payload, self.payload_type, self._event_ts, marker)
        self.rtp.skip()
        return packet


def _samples(pcm: bytes) -> array[int]:
    a = array("h")
    a.frombytes(pcm[: len(pcm) & ~1])
    if _BIG_ENDIAN:
        a.byteswap()
    return a


def _goertzel(samples: array[int], coeff: float) -> float:
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def tone_power(pcm: bytes, frequency: float, sample_rate: int = 8000) -> float:
    """Mean power of the ``frequency`` component of a PCM16 frame, in the units of mean square.

    Scaled (2|X|^2 / N^2) so a sine of amplitude A reads A^2/2, directly comparable with the frame's
    mean-square energy and with :func:`dbfs_to_power`.
    """
    samples = _samples(pcm)
    n = len(samples)
    if n == 0:
        return 0.0
    return 2.0 * _goertzel(samples, 2.0 * math.cos(2.0 * math.pi * frequency / sample_rate)) / (n * n)


def dbfs_to_power(dbfs: float) -> float:
    """Mean-square power of a sine at ``dbfs`` relative to a full-scale sine."""
    return _FULL_SCALE_SINE_POWER * 10.0 ** (dbfs / 10.0)


class ToneDetector:
    """Detects one steady tone (e.g. a 1 kHz test tone, a fax CNG at 1100 Hz) in PCM16 frames.

    A frame counts when the tone is loud enough in absolute terms and carries most of the frame's
    energy, so speech or a different tone at the same loudness does not trigger it.
    """

    __slots__ = ("frequency", "sample_rate", "min_power", "min_ratio", "_coeff")

    def __init__(
        self, frequency: float, sample_rate: int = 8000, *, min_level_dbfs: float = -36.0, min_ratio: float = 0.7
    ) -> None:
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.min_power = dbfs_to_power(min_level_dbfs)
        self.min_ratio = min_ratio
        self._coeff = 2.0 * math.cos(2.0 * math.pi * frequency / sample_rate)

    def detect(self, pcm: bytes) -> bool:
        rms = audioop.rms(pcm, 2)
        energy = float(rms) * rms
        if energy < self.min_power:
            return False
        samples = _samples(pcm)
        power = 2.0 * _goertzel(samples, self._coeff) / (len(samples) ** 2)
        return power >= self.min_power and power >= self.min_ratio * energy


class DtmfDetector:
    """In-band DTMF detection on 8 kHz PCM16 frames (20 ms frames recommended), one report per press.

    Checks follow the usual receiver practice: both tones above a level, one clear winner in each
    group, twist within +/-8 dB, and the pair carrying most of the frame's energy. A digit is
    reported after two consecutive frames agree (about 40 ms, the shortest valid press) and not again
    until a frame without it. A cheap RMS gate skips the eight Goertzel filters on quiet frames, which
    is most of a call.
    """

    __slots__ = ("sample_rate", "min_power", "min_ratio", "_row_coeffs", "_col_coeffs", "_candidate", "_reported")

    _MAX_TWIST = 10.0 ** (8.0 / 10.0)
    _PEAK_MARGIN = 10.0 ** (6.0 / 10.0)

    def __init__(self, sample_rate: int = 8000, *, min_level_dbfs: float = -36.0, min_ratio: float = 0.7) -> None:
        self.sample_rate = sample_rate
        self.min_power = dbfs_to_power(min_level_dbfs)
        self.min_ratio = min_ratio
        self._row_coeffs = tuple(2.0 * math.cos(2.0 * math.pi * f / sample_rate) for f in ROW_FREQUENCIES)
        self._col_coeffs = tuple(2.0 * math.cos(2.0 * math.pi * f / sample_rate) for f in COLUMN_FREQUENCIES)
        self._candidate: str | None = None
        self._reported: str | None = None

    def classify(self, pcm: bytes) -> str | None:
        """The digit present in this single frame, without debouncing."""
        rms = audioop.rms(pcm, 2)
        energy = float(rms) * rms
        if energy < 2.0 * self.min_power:
            return None
        samples = _samples(pcm)
        scale = 2.0 / (len(samples) ** 2)
        rows = [_goertzel(samples, c) * scale for c in self._row_coeffs]
        cols = [_goertzel(samples, c) * scale for c in self._col_coeffs]
        r = max(range(4), key=rows.__getitem__)
        c = max(range(4), key=cols.__getitem__)
        row, col = rows[r], cols[c]
        if row < self.min_power or col < self.min_power:
            return None
        if row > col * self._MAX_TWIST or col > row * self._MAX_TWIST:
            return None
        for i in range(4):
            if (i != r and rows[i] * self._PEAK_MARGIN > row) or (i != c and cols[i] * self._PEAK_MARGIN > col):
                return None
        if row + col < self.min_ratio * energy:
            return None
        return _KEYPAD[r][c]

    def process(self, pcm: bytes) -> str | None:
        """Feed one frame; returns a digit once per press."""
        digit = self.classify(pcm)
        if digit is None or digit != self._candidate:
            self._candidate = digit
            if digit != self._reported:
                self._reported = None
            return None
        if digit == self._reported:
            return None
        self._reported = digit
        return digit


class ToneGenerator:
    """Phase-continuous sine or multi-tone PCM16 generator, so successive frames join without clicks."""

    __slots__ = ("sample_rate", "_steps", "_amplitudes", "_phases")

    def __init__(self, frequencies: tuple[float, ...], sample_rate: int = 8000, *, level_dbfs: float = -10.0) -> None:
        """``level_dbfs`` is per tone, relative to a full-scale sine; the sum must not clip."""
        amplitude = 32767.0 * 10.0 ** (level_dbfs / 20.0)
        if amplitude * len(frequencies) > 32767.0:
            raise MediaError("tone levels add up past full scale")
        self.sample_rate = sample_rate
        self._steps = tuple(2.0 * math.pi * f / sample_rate for f in frequencies)
        self._amplitudes = (amplitude,) * len(frequencies)
        self._phases = [0.0] * len(frequencies)

    @classmethod
    def dtmf(cls, digit: str, sample_rate: int = 8000, *, level_dbfs: float = -10.0) -> ToneGenerator:
        return cls(digit_frequencies(digit), sample_rate, level_dbfs=level_dbfs)

    def generate(self, samples: int) -> bytes:
        out = array("h", bytes(2 * samples))
        sin = math.sin
        for k, (step, amp) in enumerate(zip(self._steps, self._amplitudes)):
            phase = self._phases[k]
            for i in range(samples):
                out[i] += int(amp * sin(phase + step * i))
            self._phases[k] = (phase + step * samples) % (2.0 * math.pi)
        if _BIG_ENDIAN:
            out.byteswap()
        return out.tobytes()
