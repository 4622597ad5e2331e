"""Caller audio cut into 20 ms frames for the agent, whatever the carrier's packet time.

Agents are promised one 20 ms frame at a time (Twilio Media Streams sends 160-byte µ-law chunks,
the PCM16 dialect and the QUIC datagrams are specified as 20 ms), but a carrier may packetise at
10, 30 or 60 ms, and the media session hands each packet's payload over as it is. The part of a
packet that does not fill a frame waits for the next packet, so nothing is padded or dropped and
the agent's idea of media time stays exact.
"""

from __future__ import annotations


class FrameCutter:
    """One call's caller stream, cut into frames of ``frame_bytes``; the remainder waits in :attr:`pending`."""

    __slots__ = ("frame_bytes", "pending")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        self.frame_bytes = frame_bytes
        self.pending = b""

    def cut(self, payload: bytes) -> list[bytes]:
        """The whole frames that ``payload``, after what was pending, completes (maybe none)."""
        data = self.pending + payload if self.pending else payload
        size = self.frame_bytes
        whole = len(data) - len(data) % size
        self.pending = data[whole:]
        return [data[start:start + size] for start in range(0, whole, size)]
