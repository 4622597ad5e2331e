import pytest

from trunkline.media.errors import RtcpError
from trunkline.media.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_rtcp,
    build_rtcp_packet,
    compact_ntp,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)

BLOCK = ReportBlock(
    ssrc=0x11111111,
    fraction_lost=64,
    cumulative_lost=-3,
    highest_sequence=0x0001FFFF,
    jitter=42,
    last_sr=0xAABBCCDD,
    delay_since_last_sr=0x00010000,
)


def test_receiver_report_wire_layout():
    data = build_rtcp_packet(ReceiverReport(0x22222222, (BLOCK,)))
    assert len(data) == 8 + 24
    assert data[:4] == bytes.fromhex("81c90007")  # V=2 RC=1, PT=201, 7 words after the first
    assert data[4:8] == bytes.fromhex("22222222")
    assert data[12] == 64  # fraction lost
    assert data[13:16] == bytes.fromhex("fffffd")  # -3 as 24-bit two's complement
    assert parse_rtcp(data) == [ReceiverReport(0x22222222, (BLOCK,))]


def test_compound_sr_sdes_bye_round_trip():
    packets = [
        SenderReport(0x1234, ntp_timestamp(1_700_000_000.25), 160_000, 1000, 160_000, (BLOCK, BLOCK)),
        SourceDescription.cname(0x1234, "trunkline@example.net"),
        Bye((0x1234,), "call ended"),
    ]
    data = build_rtcp(packets)
    assert len(data) % 4 == 0
    parsed = parse_rtcp(data)
    assert parsed == packets
    sdes = parsed[1]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "trunkline@example.net"


def test_sdes_with_several_items_and_exact_padding():
    sdes = SourceDescription((SdesChunk(7, ((1, b"abcd"), (6, b"tool"))), SdesChunk(8, ((1, b"xy"),))))
    data = build_rtcp_packet(sdes)
    assert data[0] & 0x1F == 2
    assert parse_rtcp(data) == [sdes]


def test_unknown_packet_types_are_kept():
    app = UnknownRtcp(204, 1, b"\x00\x00\x00\x01NAME")
    rr = ReceiverReport(1)
    assert parse_rtcp(build_rtcp([rr, app])) == [rr, app]


def test_padding_on_last_packet_is_stripped():
    body = bytes.fromhex("00000001") + bytes.fromhex("00000004")  # SSRC + 4 bytes padding ending in count 4
    data = bytes.fromhex("a0c90002") + body  # P bit, RR, RC=0, length 2
    assert parse_rtcp(data) == [ReceiverReport(1)]


def test_ntp_conversion():
    assert ntp_timestamp(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_timestamp(1.5) == ((NTP_UNIX_OFFSET + 1) << 32) | 0x80000000
    assert compact_ntp(ntp_timestamp(1.5)) == (((NTP_UNIX_OFFSET + 1) & 0xFFFF) << 16) | 0x8000


def test_round_trip_time_from_lsr_and_dlsr():
    sent = 1_700_000_000.0
    lsr = compact_ntp(ntp_timestamp(sent))
    held = 0.75  # the peer sat on our SR this long before reporting
    block = BLOCK.__class__(1, 0, 0, 0, 0, lsr, int(held * 65536))
    rtt = round_trip_time(block, ntp_timestamp(sent + held + 0.120))
    assert rtt == pytest.approx(0.120, abs=2 / 65536)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), ntp_timestamp(sent)) is None
    assert round_trip_time(block, ntp_timestamp(sent)) == 0.0  # negative clamps


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\xc9",
        bytes.fromhex("40c90001 00000001"),  # version 1
        bytes.fromhex("80c90005 00000001"),  # length beyond datagram
        bytes.fromhex("81c90001 00000001"),  # RC=1, no block
        bytes.fromhex("80c80001 00000001"),  # SR without sender info
        bytes.fromhex("81ca0002 00000001 01056162"),  # SDES item runs off the end
        bytes.fromhex("81ca0001 00000001"),  # SDES chunk without terminator
        bytes.fromhex("82cb0001 00000001"),  # BYE SC=2, one SSRC
        bytes.fromhex("80c90001 00000001 80"),  # trailing garbage
        bytes.fromhex("a0c90001 00000009"),  # padding count larger than body
    ],
)
def test_malformed_rtcp_raises(data):
    with pytest.raises(RtcpError):
        parse_rtcp(data)


def test_build_rejects_too_many_blocks():
    with pytest.raises(RtcpError):
        build_rtcp_packet(ReceiverReport(1, (BLOCK,) * 32))


def test_cumulative_lost_is_clamped_to_24_bits():
    big = ReportBlock(1, 0, 10_000_000, 0, 0)
    (parsed,) = parse_rtcp(build_rtcp_packet(ReceiverReport(2, (big,))))
    assert isinstance(parsed, ReceiverReport)
    assert parsed.reports[0].cumulative_lost == 0x7FFFFF
