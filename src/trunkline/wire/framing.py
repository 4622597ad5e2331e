"""Frames: ``u32 length | u32 method_id | envelope`` (PROTOCOL.md §2).

Two readers, because the two stream kinds differ: a bidi request is "everything before FIN" and may
use either length convention (``4 + n`` or the C-FFI core's ``8 + n``); a uni stream is a run of
back-to-back frames where only ``4 + n`` can be right, so it is cut incrementally.
"""

from __future__ import annotations

import struct

from trunkline.wire.envelope import Dto

FRAME_LIMIT = 1 << 20
_HEADER = struct.Struct("<II")
_LEN = struct.Struct("<I")


class FrameError(ValueError):
    """A frame that breaks §2 (zero, oversized, truncated); the stream carrying it is reset."""


def encode_frame(method_id: int, message: Dto) -> bytes:
    envelope = message.to_bytes()
    return _HEADER.pack(4 + len(envelope), method_id) + envelope


def request_frame_ready(buffer: bytes | bytearray) -> bool:
    """True once a bidi request is complete under the ``4 + n`` convention, so a client that never
    sends FIN is still answered; ``8 + n`` requests can only complete at FIN."""
    return len(buffer) >= 8 and _LEN.unpack_from(buffer)[0] == len(buffer) - 4


def parse_request_frame(buffer: bytes | bytearray) -> tuple[int, memoryview]:
    """Split a complete bidi request into ``(method_id, envelope)``, accepting both conventions."""
    if len(buffer) < 8:
        raise FrameError(f"request truncated: {len(buffer)} bytes")
    length, method_id = _HEADER.unpack_from(buffer)
    if length == 0 or length > FRAME_LIMIT:
        raise FrameError(f"frame length {length} outside 1..{FRAME_LIMIT}")
    n = len(buffer) - 8
    if length != 4 + n and length != 8 + n:
        raise FrameError(f"frame length {length} does not match {n} envelope bytes received")
    return method_id, memoryview(buffer)[8:]


class FrameDecoder:
    """Cuts a unidirectional stream into frames as bytes arrive. After a :class:`FrameError` the
    stream is unusable (its framing is lost) and the decoder keeps raising."""

    __slots__ = ("_buf", "_broken")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._broken: str | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._broken:
            raise FrameError(self._broken)
        buf = self._buf
        buf += data
        frames: list[tuple[int, bytes]] = []
        pos = 0
        while len(buf) - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length < 4 or length > FRAME_LIMIT:
                self._broken = f"frame length {length} outside 4..{FRAME_LIMIT}"
                raise FrameError(self._broken)
            end = pos + 4 + length
            if end > len(buf):
                break
            (method_id,) = _LEN.unpack_from(buf, pos + 4)
            frames.append((method_id, bytes(buf[pos + 8 : end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    def close(self) -> None:
        """End of stream: leftover bytes are a truncated frame."""
        if self._buf and not self._broken:
            self._broken = f"stream ended inside a frame ({len(self._buf)} bytes pending)"
            raise FrameError(self._broken)
