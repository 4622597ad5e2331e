"""RTP packets (RFC 3550 section 5.1) and the outbound packetizer.

Parsing rejects only what is malformed; unusual but legal packets (CSRCs, header extensions,
padding) are accepted, because trunks and SBCs add them freely. The packetizer is called once per
20 ms frame per call, so it packs straight from a precompiled ``struct.Struct``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trunkline.media.errors import RtpError
from trunkline.media.stats import SendStatistics

RTP_VERSION = 2

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_CSRC = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension: 16-bit profile word and data (a multiple of four bytes)."""

    profile: int
    data: bytes


@dataclass(slots=True)
class RtpPacket:
    """A parsed RTP packet; ``padding`` is how many padding bytes were stripped (or are to be added).

    Not frozen: a frozen dataclass's ``__init__`` costs about twice as much, and one of these is
    built for every received packet of every call.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing: second octet 192-223 marks RTCP when RTP and RTCP share a port."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one datagram; raises :class:`RtpError` on anything that is not a well-formed RTP packet."""
    size = len(data)
    if size < _HEADER.size:
        raise RtpError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    offset = _HEADER.size
    csrc_count = first & 0x0F
    csrcs: tuple[int, ...] = ()
    if csrc_count:
        end = offset + 4 * csrc_count
        if end > size:
            raise RtpError("CSRC list runs past the end of the packet")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
        offset = end
    extension = None
    if first & 0x10:
        if offset + _EXTENSION.size > size:
            raise RtpError("header extension runs past the end of the packet")
        profile, words = _EXTENSION.unpack_from(data, offset)
        start = offset + _EXTENSION.size
        offset = start + 4 * words
        if offset > size:
            raise RtpError("header extension runs past the end of the packet")
        extension = RtpExtension(profile, bytes(data[start:offset]))
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or offset + padding > size:
            raise RtpError(f"invalid padding count {padding}")
        end -= padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=csrcs,
        extension=extension,
        padding=padding,
    )


_PLAIN_TAIL = struct.Struct("!BHII")  # the header after its first octet


def parse_rtp_fields(data: bytes) -> tuple[int, int, int, int, bytes]:
    """``(payload_type, sequence, timestamp, ssrc, payload)`` for the receive path, which needs no
    more. A plain packet (version 2, no CSRC, extension or padding: nearly every one) is unpacked
    without building an :class:`RtpPacket`; anything else goes through :func:`parse_rtp`, so the
    rules are the same. Raises :class:`RtpError`."""
    if data[:1] == b"\x80" and len(data) > _HEADER.size:
        second, sequence, timestamp, ssrc = _PLAIN_TAIL.unpack_from(data, 1)
        return second & 0x7F, sequence, timestamp, ssrc, data[_HEADER.size :]
    packet = parse_rtp(data)
    return packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, packet.payload


def build_rtp(packet: RtpPacket) -> bytes:
    """Serialise a packet; raises :class:`RtpError` if a field cannot be represented."""
    if not 0 <= packet.payload_type <= 127:
        raise RtpError(f"payload type {packet.payload_type} is outside 0..127")
    if len(packet.csrcs) > 15:
        raise RtpError("at most 15 CSRCs fit an RTP header")
    if not 0 <= packet.padding <= 255:
        raise RtpError("padding must be 0..255 bytes")
    first = RTP_VERSION << 6 | len(packet.csrcs)
    parts = []
    if packet.padding:
        first |= 0x20
    if packet.extension is not None:
        first |= 0x10
    parts.append(
        _HEADER.pack(
            first,
            (0x80 if packet.marker else 0) | packet.payload_type,
            packet.sequence & 0xFFFF,
            packet.timestamp & 0xFFFFFFFF,
            packet.ssrc & 0xFFFFFFFF,
        )
    )
    parts.extend(_CSRC.pack(c) for c in packet.csrcs)
    if packet.extension is not None:
        ext = packet.extension
        if len(ext.data) % 4:
            raise RtpError("header extension data must be a multiple of four bytes")
        parts.append(_EXTENSION.pack(ext.profile, len(ext.data) // 4))
        parts.append(ext.data)
    parts.append(packet.payload)
    if packet.padding:
        parts.append(b"\x00" * (packet.padding - 1) + bytes((packet.padding,)))
    return b"".join(parts)


class RtpSender:
    """Outbound RTP state for one stream: SSRC, sequence number and media clock.

    The media clock advances by ``samples_per_frame`` for every frame, sent or not: call
    :meth:`skip` for a frame that carries no audio (muted, silence-suppressed, or taken by a DTMF
    event) so the timestamp keeps tracking real time. The first packet after a skip, like the very
    first packet, carries the marker bit as the start of a talkspurt. Initial sequence number and
    timestamp should be random (RFC 3550 5.1); the caller supplies them so this stays deterministic.
    """

    __slots__ = ("ssrc", "payload_type", "samples_per_frame", "sequence", "timestamp", "stats", "_talkspurt")

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        *,
        samples_per_frame: int = 160,
        sequence: int = 0,
        timestamp: int = 0,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise RtpError(f"payload type {payload_type} is outside 0..127")
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type
        self.samples_per_frame = samples_per_frame
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self.stats = SendStatistics()
        self._talkspurt = True

    def packetize(self, payload: bytes, samples: int | None = None) -> bytes:
        """Wrap one frame of encoded audio and advance sequence and clock."""
        marker = 0x80 if self._talkspurt else 0
        self._talkspurt = False
        packet = (
            _HEADER.pack(0x80, marker | self.payload_type, self.sequence, self.timestamp, self.ssrc) + payload
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + (self.samples_per_frame if samples is None else samples)) & 0xFFFFFFFF
        self.stats.record(len(payload))
        return packet

    def packetize_event(self, payload: bytes, payload_type: int, timestamp: int, marker: bool) -> bytes:
        """Wrap a packet of another payload type (e.g. telephone-event) sharing this SSRC's sequence space.

        The media clock is left alone: RFC 4733 events carry their start timestamp in every packet.
        """
        packet = (
            _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, self.sequence, timestamp & 0xFFFFFFFF, self.ssrc)
            + payload
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.stats.record(len(payload))
        return packet

    def skip(self, samples: int | None = None) -> None:
        """Advance the media clock over a frame that is not sent; the next packet starts a talkspurt."""
        self.timestamp = (self.timestamp + (self.samples_per_frame if samples is None else samples)) & 0xFFFFFFFF
        self._talkspurt = True
