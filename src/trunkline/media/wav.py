"""WAV loading for prompts and hold music, and writing for tests and recordings.

Prompts arrive in whatever format an operator exported; everything is normalised once, at load time,
to the 8 kHz mono PCM16 the media path plays, so nothing is converted per frame during a call. The
RIFF chunks are read by hand rather than with :mod:`wave` so that WAVE_FORMAT_EXTENSIBLE files load
on every supported Python and every defect gets a specific error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trunkline.media._audioop import audioop
from trunkline.media.errors import WavError

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_PCM_SUBFORMAT_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
"""KSDATAFORMAT_SUBTYPE_PCM after its leading format tag (the GUID's first two bytes)."""

_RIFF = struct.Struct("<4sI4s")
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")


@dataclass(frozen=True, slots=True)
class WavFormat:
    sample_rate: int
    channels: int
    sample_width: int


def parse_wav(data: bytes) -> tuple[WavFormat, bytes]:
    """Split a PCM WAV file into its format and raw little-endian sample data."""
    if len(data) < _RIFF.size:
        raise WavError("file too short to be a WAV")
    riff, _, wave = _RIFF.unpack_from(data)
    if riff != b"RIFF" or wave != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    fmt: WavFormat | None = None
    pos = _RIFF.size
    while pos + _CHUNK.size <= len(data):
        chunk_id, size = _CHUNK.unpack_from(data, pos)
        body_start = pos + _CHUNK.size
        body = data[body_start : body_start + size]
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("data chunk before fmt chunk")
            if len(body) < size:
                raise WavError(f"data chunk truncated: {len(body)} of {size} bytes present")
            frame = fmt.sample_width * fmt.channels
            return fmt, bytes(body[: len(body) - len(body) % frame])
        pos = body_start + size + (size & 1)  # chunks are word aligned
    raise WavError("no data chunk" if fmt is not None else "no fmt chunk")


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < _FMT.size:
        raise WavError("fmt chunk truncated")
    tag, channels, rate, _, _, bits = _FMT.unpack_from(body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40 or body[26:40] != _PCM_SUBFORMAT_TAIL:
            raise WavError("extensible WAV whose subformat is not integer PCM")
        tag = struct.unpack_from("<H", body, 24)[0]
    if tag != WAVE_FORMAT_PCM:
        raise WavError(f"WAV format tag 0x{tag:04x} is not integer PCM (compressed or float audio)")
    if bits not in (8, 16, 24, 32):
        raise WavError(f"unsupported sample size of {bits} bits")
    if channels not in (1, 2):
        raise WavError(f"{channels} channels; only mono and stereo are supported")
    if rate <= 0:
        raise WavError("sample rate must be positive")
    return WavFormat(rate, channels, bits // 8)


def load_wav(data: bytes, sample_rate: int = 8000) -> bytes:
    """Decode a PCM WAV (8/16/24/32-bit, mono or stereo, any rate) to mono PCM16 at ``sample_rate``."""
    fmt, pcm = parse_wav(data)
    width = fmt.sample_width
    if width == 1:
        # 8-bit WAV is unsigned; audioop works on signed samples.
        pcm = audioop.bias(pcm, 1, -128)
    if fmt.channels == 2:
        pcm = audioop.tomono(pcm, width, 0.5, 0.5)
    if width != 2:
        pcm = audioop.lin2lin(pcm, width, 2)
    if fmt.sample_rate != sample_rate:
        pcm, _ = audioop.ratecv(pcm, 2, 1, fmt.sample_rate, sample_rate, None)
    return pcm


def write_wav(pcm: bytes, sample_rate: int = 8000, channels: int = 1) -> bytes:
    """A minimal 16-bit PCM WAV file holding ``pcm`` (little-endian samples, interleaved if stereo)."""
    if len(pcm) % (2 * channels):
        raise WavError("PCM length is not a whole number of frames")
    block = 2 * channels
    fmt = _FMT.pack(WAVE_FORMAT_PCM, channels, sample_rate, sample_rate * block, block, 16)
    chunks = _CHUNK.pack(b"fmt ", len(fmt)) + fmt + _CHUNK.pack(b"data", len(pcm)) + pcm
    return _RIFF.pack(b"RIFF", 4 + len(chunks), b"WAVE") + chunks
