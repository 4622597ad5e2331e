"""Tiny WAV helpers for peer tests (stdlib only: ``wave`` + ``array``).

Why: tests must prove that audio really crossed a call (not just that SIP
succeeded), e.g. "baresip recorded non-silent audio".  That only needs a
tone generator and an RMS/peak meter, so no numpy/sox dependency is taken
(sox is still handy for humans: ``sox file.wav -n stats``).
"""

from __future__ import annotations

import math
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path


def write_tone_wav(
    path: Path,
    *,
    freq_hz: float = 440.0,
    seconds: float = 3.0,
    rate: int = 8000,
    amplitude: float = 0.3,
) -> Path:
    """Write a mono 16-bit sine WAV (default: 3 s of 440 Hz at 8 kHz).

    8 kHz mono matches G.711, so baresip's ``aufile`` source needs no
    resampling.
    """
    n = int(seconds * rate)
    peak = int(32767 * max(0.0, min(1.0, amplitude)))
    samples = array("h", (int(peak * math.sin(2 * math.pi * freq_hz * i / rate)) for i in range(n)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@dataclass(frozen=True)
class WavStats:
    """Level summary of a 16-bit PCM WAV."""

    rate: int
    channels: int
    frames: int
    rms: float
    """Root mean square over all samples, full scale = 32768."""
    peak: int
    active_fraction: float
    """Share of 20 ms windows whose RMS exceeds ``silence_rms``."""

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    @property
    def rms_dbfs(self) -> float:
        return 20 * math.log10(self.rms / 32768) if self.rms > 0 else -math.inf


def wav_stats(path: Path, *, silence_rms: float = 100.0) -> WavStats:
    """Measure a 16-bit WAV (what baresip's ``sndfile`` module writes).

    A WAV whose header was never finalised (process killed) may report 0
    frames; :class:`~tests.peers.baresip.Baresip` stops gracefully for that
    reason.
    """
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM supported")
        rate, channels, frames = w.getframerate(), w.getnchannels(), w.getnframes()
        data = array("h")
        data.frombytes(w.readframes(frames))
    if not data:
        return WavStats(rate, channels, 0, 0.0, 0, 0.0)
    rms = math.sqrt(sum(s * s for s in data) / len(data))
    peak = max(abs(min(data)), abs(max(data)))
    win = max(1, rate * channels // 50)
    windows = [data[i : i + win] for i in range(0, len(data), win)]
    active = sum(1 for wd in windows if math.sqrt(sum(s * s for s in wd) / len(wd)) > silence_rms)
    return WavStats(rate, channels, len(data) // max(1, channels), rms, peak, active / len(windows))
