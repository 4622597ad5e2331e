import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.media.errors import MediaError, RtpError
from trunkline.media.rtp import (
    RtpExtension,
    RtpPacket,
    RtpSender,
    build_rtp,
    is_rtcp,
    parse_rtp,
    parse_rtp_fields,
)


def test_parse_known_bytes():
    data = bytes.fromhex("80e0 0102 00000a0b deadbeef") + b"\xff" * 160
    p = parse_rtp(data)
    assert p.payload_type == 96
    assert p.marker is True
    assert p.sequence == 0x0102
    assert p.timestamp == 0x0A0B
    assert p.ssrc == 0xDEADBEEF
    assert p.payload == b"\xff" * 160
    assert p.csrcs == () and p.extension is None and p.padding == 0


def test_round_trip_with_csrc_extension_and_padding():
    packet = RtpPacket(
        payload_type=0,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        marker=False,
        csrcs=(7, 8),
        extension=RtpExtension(0xBEDE, b"\x10\x01\x00\x00"),
        padding=5,
    )
    data = build_rtp(packet)
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert len(data) == 12 + 8 + 4 + 4 + 3 + 5
    assert data[-1] == 5
    assert parse_rtp(data) == packet


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    padding=st.integers(0, 255),
)
def test_round_trip_property(pt, seq, ts, ssrc, payload, marker, csrcs, padding):
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, csrcs, None, padding)
    data = build_rtp(packet)
    assert parse_rtp(data) == packet
    # The receive path's shortcut agrees with the full parser on every packet, plain or not.
    assert parse_rtp_fields(data) == (pt, seq, ts, ssrc, payload)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",
        bytes.fromhex("40000001 00000000 00000001"),  # version 1
        bytes.fromhex("82000001 00000000 00000001 00000002"),  # CC=2, one CSRC present
        bytes.fromhex("90000001 00000000 00000001 bede0002 00000000"),  # extension claims 2 words, has 1
        bytes.fromhex("a0000001 00000000 00000001 aabb00"),  # padding count 0
        bytes.fromhex("a0000001 00000000 00000001 aabb09"),  # padding longer than payload
    ],
)
def test_malformed_packets_raise(data):
    with pytest.raises(RtpError):
        parse_rtp(data)
    with pytest.raises(RtpError):
        parse_rtp_fields(data)
    assert issubclass(RtpError, MediaError) and issubclass(RtpError, ValueError)


def test_build_rejects_unrepresentable_fields():
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(128, 0, 0, 0, b""))
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(0, 0, 0, 0, b"", extension=RtpExtension(1, b"abc")))
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(0, 0, 0, 0, b"", csrcs=tuple(range(16))))


def test_is_rtcp_demux():
    assert is_rtcp(bytes.fromhex("80c80006"))  # SR
    assert is_rtcp(bytes.fromhex("81c90007"))  # RR
    assert not is_rtcp(bytes.fromhex("80000001"))  # PCMU
    assert not is_rtcp(bytes.fromhex("80e50001"))  # PT 101 with marker
    assert not is_rtcp(b"\x80")


def test_sender_sequence_timestamp_and_marker():
    sender = RtpSender(0x1234, 0, sequence=65534, timestamp=0xFFFFFF00)
    packets = [parse_rtp(sender.packetize(bytes(160))) for _ in range(4)]
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]
    assert [p.marker for p in packets] == [True, False, False, False]
    assert all(p.ssrc == 0x1234 and p.payload_type == 0 for p in packets)
    assert sender.stats.packets == 4 and sender.stats.octets == 640


def test_sender_skip_keeps_clock_and_marks_talkspurt():
    sender = RtpSender(1, 8, sequence=10, timestamp=1000)
    sender.packetize(bytes(160))
    sender.skip()
    sender.skip()
    p = parse_rtp(sender.packetize(bytes(160)))
    assert p.sequence == 11  # no sequence numbers burnt on silence
    assert p.timestamp == 1000 + 3 * 160
    assert p.marker
    assert not parse_rtp(sender.packetize(bytes(160))).marker


def test_sender_event_shares_sequence_but_not_clock():
    sender = RtpSender(1, 0, sequence=5, timestamp=800)
    sender.packetize(bytes(160))
    e = parse_rtp(sender.packetize_event(b"\x01\x0a\x00\xa0", 101, 960, True))
    assert (e.sequence, e.timestamp, e.payload_type, e.marker) == (6, 960, 101, True)
    assert sender.timestamp == 960
    assert parse_rtp(sender.packetize(bytes(160))).sequence == 7


def test_sender_rejects_bad_payload_type():
    with pytest.raises(RtpError):
        RtpSender(1, 200)


def test_header_struct_matches_rfc_layout():
    data = RtpSender(0xCAFEBABE, 8, sequence=0x0203, timestamp=0x04050607).packetize(b"\xd5")
    assert struct.unpack("!BBHII", data[:12]) == (0x80, 0x80 | 8, 0x0203, 0x04050607, 0xCAFEBABE)
