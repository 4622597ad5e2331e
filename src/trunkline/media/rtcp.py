"""RTCP (RFC 3550 section 6) sender/receiver reports, SDES, BYE and compound packets.

Only the wire format and the time arithmetic live here; which numbers go into a report is decided by
:mod:`trunkline.media.stats`. Unknown packet types (APP, XR, feedback) are carried through as
:class:`UnknownRtcp` rather than rejected, because trunks routinely append them to compound packets
and one unrecognised part must not cost us the reports beside it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

from trunkline.media.errors import RtcpError

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203

SDES_END = 0
SDES_CNAME = 1

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""

_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IIIIII")  # SSRC, NTP msw, NTP lsw, RTP ts, packets, octets
_REPORT_BLOCK = struct.Struct("!IIIIII")  # SSRC, fraction|lost, ext seq, jitter, LSR, DLSR
_MAX_COUNT = 31


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report about one source; ``cumulative_lost`` is signed (duplicates can make it negative)."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    @property
    def loss_ratio(self) -> float:
        return self.fraction_lost / 256.0


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """Items are kept as raw ``(type, value)`` pairs so non-CNAME items survive a round trip."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...]

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname.encode("utf-8")),)),))


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    packet_type: int
    count: int
    body: bytes


RtcpPacket = Union[SenderReport, ReceiverReport, SourceDescription, Bye, UnknownRtcp]


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp for a Unix time; the caller supplies the wall clock."""
    seconds = int(unix_time)
    fraction = int((unix_time - seconds) * (1 << 32)) & 0xFFFFFFFF
    return (((seconds + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | fraction


def compact_ntp(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the unit of LSR and of RTT arithmetic (1/65536 s)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(block: ReportBlock, arrival_ntp: int) -> float | None:
    """RTT in seconds from a report block about our stream, received at ``arrival_ntp`` (64-bit).

    Returns None when the peer has not yet seen a sender report from us (LSR 0), since no RTT can be
    derived then. A negative result (clock steps, bogus DLSR) is reported as 0.0 rather than as a
    wrapped four-billion-second value.
    """
    if block.last_sr == 0:
        return None
    delta = (compact_ntp(arrival_ntp) - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
    if delta >= 0x80000000:
        return 0.0
    return delta / 65536.0


def _header(padding: bool, count: int, packet_type: int, body_len: int) -> bytes:
    if count > _MAX_COUNT:
        raise RtcpError(f"at most {_MAX_COUNT} items fit one RTCP packet, got {count}")
    return _HEADER.pack(0x80 | (0x20 if padding else 0) | count, packet_type, body_len // 4)


def _pack_blocks(blocks: tuple[ReportBlock, ...]) -> bytes:
    out = []
    for b in blocks:
        lost = max(-0x800000, min(0x7FFFFF, b.cumulative_lost)) & 0xFFFFFF
        out.append(
            _REPORT_BLOCK.pack(
                b.ssrc,
                ((b.fraction_lost & 0xFF) << 24) | lost,
                b.highest_sequence & 0xFFFFFFFF,
                b.jitter & 0xFFFFFFFF,
                b.last_sr & 0xFFFFFFFF,
                b.delay_since_last_sr & 0xFFFFFFFF,
            )
        )
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def build_rtcp_packet(packet: RtcpPacket) -> bytes:
    """Serialise one RTCP packet (header included)."""
    if isinstance(packet, SenderReport):
        body = _SENDER_INFO.pack(
            packet.ssrc,
            (packet.ntp_timestamp >> 32) & 0xFFFFFFFF,
            packet.ntp_timestamp & 0xFFFFFFFF,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
            packet.octet_count & 0xFFFFFFFF,
        ) + _pack_blocks(packet.reports)
        return _header(False, len(packet.reports), PT_SR, len(body)) + body
    if isinstance(packet, ReceiverReport):
        body = _SSRC.pack(packet.ssrc) + _pack_blocks(packet.reports)
        return _header(False, len(packet.reports), PT_RR, len(body)) + body
    if isinstance(packet, SourceDescription):
        parts = []
        for chunk in packet.chunks:
            items = [_SSRC.pack(chunk.ssrc)]
            for kind, value in chunk.items:
                if not 0 < kind < 256 or len(value) > 255:
                    raise RtcpError("SDES item type must be 1..255 and its value at most 255 bytes")
                items.append(bytes((kind, len(value))) + value)
            # The item list ends with at least one null octet, then pads to a 32-bit boundary.
            parts.append(_pad4(b"".join(items) + b"\x00"))
        body = b"".join(parts)
        return _header(False, len(packet.chunks), PT_SDES, len(body)) + body
    if isinstance(packet, Bye):
        body = b"".join(_SSRC.pack(s) for s in packet.ssrcs)
        if packet.reason is not None:
            reason = packet.reason.encode("utf-8")[:255]
            body += _pad4(bytes((len(reason),)) + reason)
        return _header(False, len(packet.ssrcs), PT_BYE, len(body)) + body
    if len(packet.body) % 4:
        raise RtcpError("an RTCP packet body must be a whole number of 32-bit words")
    return _header(False, packet.count, packet.packet_type, len(packet.body)) + packet.body


def build_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Serialise a compound packet; RFC 3550 wants an SR or RR first, which is the caller's order."""
    return b"".join(build_rtcp_packet(p) for p in packets)


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < offset + count * _REPORT_BLOCK.size:
        raise RtcpError("report count exceeds the packet length")
    blocks = []
    for i in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
            body, offset + i * _REPORT_BLOCK.size
        )
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpError("SDES chunk truncated")
        (ssrc,) = _SSRC.unpack_from(body, pos)
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpError("SDES item list not terminated")
            kind = body[pos]
            if kind == SDES_END:
                pos += 1
                pos += -pos % 4
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError("SDES item truncated")
            length = body[pos + 1]
            items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    if len(body) < 4 * count:
        raise RtcpError("BYE source count exceeds the packet length")
    ssrcs = tuple(_SSRC.unpack_from(body, 4 * i)[0] for i in range(count))
    reason = None
    rest = body[4 * count :]
    if rest:
        if 1 + rest[0] > len(rest):
            raise RtcpError("BYE reason truncated")
        reason = bytes(rest[1 : 1 + rest[0]]).decode("utf-8", "replace")
    return Bye(ssrcs, reason)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a (compound) RTCP datagram into its packets; raises :class:`RtcpError` if malformed."""
    packets: list[RtcpPacket] = []
    pos = 0
    end = len(data)
    if end < _HEADER.size:
        raise RtcpError("RTCP datagram shorter than a header")
    while pos < end:
        if end - pos < _HEADER.size:
            raise RtcpError("trailing bytes after the last RTCP packet")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version {first >> 6}, expected 2")
        size = (words + 1) * 4
        if pos + size > end:
            raise RtcpError("RTCP length field exceeds the datagram")
        body = data[pos + 4 : pos + size]
        if first & 0x20:
            # Only the last packet of a compound may be padded; its last octet counts the padding.
            if pos + size != end or not body or not 0 < body[-1] <= len(body):
                raise RtcpError("bad RTCP padding")
            body = body[: -body[-1]]
        count = first & 0x1F
        packets.append(_parse_one(packet_type, count, bytes(body)))
        pos += size
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == PT_SR:
        if len(body) < _SENDER_INFO.size:
            raise RtcpError("SR shorter than its sender info")
        ssrc, msw, lsw, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        blocks = _parse_blocks(body, _SENDER_INFO.size, count)
        return SenderReport(ssrc, (msw << 32) | lsw, rtp_ts, packets, octets, blocks)
    if packet_type == PT_RR:
        if len(body) < 4:
            raise RtcpError("RR shorter than its SSRC")
        return ReceiverReport(_SSRC.unpack_from(body)[0], _parse_blocks(body, 4, count))
    if packet_type == PT_SDES:
        return _parse_sdes(body, count)
    if packet_type == PT_BYE:
        return _parse_bye(body, count)
    return UnknownRtcp(packet_type, count, body)
