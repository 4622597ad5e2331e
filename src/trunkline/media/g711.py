"""G.711 (PCMU/PCMA) transcoding, payload-type mapping and stateful resampling.

Internal audio everywhere in Trunkline is PCM16 little-endian mono; G.711 is what crosses the
trunk. ``audioop`` does the per-sample work in C, which matters at one call per 20 ms per leg.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trunkline.media._audioop import audioop
from trunkline.media.errors import MediaError

SAMPLE_WIDTH = 2


def pcmu_encode(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, SAMPLE_WIDTH)


def pcmu_decode(payload: bytes) -> bytes:
    return audioop.ulaw2lin(payload, SAMPLE_WIDTH)


def pcma_encode(pcm: bytes) -> bytes:
    return audioop.lin2alaw(pcm, SAMPLE_WIDTH)


def pcma_decode(payload: bytes) -> bytes:
    return audioop.alaw2lin(payload, SAMPLE_WIDTH)


@dataclass(frozen=True, slots=True)
class G711Codec:
    """A G.711 variant: its static payload type, the encoded byte for silence, and its transcoders."""

    name: str
    payload_type: int
    silence_byte: int
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]
    clock_rate: int = 8000

    def silence(self, samples: int = 160) -> bytes:
        """Encoded silence, for frames the jitter buffer reports missing."""
        return bytes((self.silence_byte,)) * samples


PCMU = G711Codec("PCMU", 0, 0xFF, pcmu_encode, pcmu_decode)
PCMA = G711Codec("PCMA", 8, 0xD5, pcma_encode, pcma_decode)

CODECS: dict[str, G711Codec] = {PCMU.name: PCMU, PCMA.name: PCMA}
_BY_PAYLOAD_TYPE: dict[int, G711Codec] = {PCMU.payload_type: PCMU, PCMA.payload_type: PCMA}


def codec_by_name(name: str) -> G711Codec:
    """Look up a codec by its SDP encoding name, case-insensitively (RFC 4566 says names are)."""
    try:
        return CODECS[name.upper()]
    except KeyError:
        raise MediaError(f"unsupported codec {name!r}") from None


def codec_by_payload_type(payload_type: int) -> G711Codec:
    try:
        return _BY_PAYLOAD_TYPE[payload_type]
    except KeyError:
        raise MediaError(f"unsupported static payload type {payload_type}") from None


_ALL_BYTES = bytes(range(256))
_ALAW_TO_ULAW = pcmu_encode(pcma_decode(_ALL_BYTES))
_ULAW_TO_ALAW = pcma_encode(pcmu_decode(_ALL_BYTES))


def transcoder(source: G711Codec, target: G711Codec) -> Callable[[bytes], bytes] | None:
    """A G.711 -> G.711 converter, or None when the two are the same codec (use the bytes as they are).

    A-law <-> µ-law is a byte-for-byte table lookup (the table is the round trip through PCM16,
    computed once), so audio that arrives and leaves as G.711 never pays for PCM16 per sample.
    """
    if source is target:
        return None
    table = _ALAW_TO_ULAW if source is PCMA else _ULAW_TO_ALAW
    return lambda payload: payload.translate(table)


def payload_type_for(name: str) -> int:
    return codec_by_name(name).payload_type


def name_for_payload_type(payload_type: int) -> str:
    return codec_by_payload_type(payload_type).name


class Resampler:
    """Mono PCM16 rate conversion that keeps ``ratecv`` filter state between frames.

    Converting each 20 ms frame independently would restart the interpolator every frame and click
    at every frame boundary; carrying the state makes a stream of frames sound like one signal.
    """

    __slots__ = ("in_rate", "out_rate", "_state")

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise MediaError("sample rates must be positive")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._state: tuple[object, ...] | None = None

    def process(self, pcm: bytes) -> bytes:
        if self.in_rate == self.out_rate:
            return pcm
        out, self._state = audioop.ratecv(pcm, SAMPLE_WIDTH, 1, self.in_rate, self.out_rate, self._state)
        return out

    def reset(self) -> None:
        """Forget filter history, e.g. when the source stream changes (new SSRC, hold/resume)."""
        self._state = None
