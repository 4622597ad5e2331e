import pytest

from trunkline.media.rtcp import compact_ntp, ntp_timestamp
from trunkline.media.stats import (
    MediaStatsSnapshot,
    ReceiveStatistics,
    SendStatistics,
    estimate_mos,
    mos_from_r,
    r_factor,
    snapshot,
)


def feed(stats, seqs, *, samples=160, clock_rate=8000):
    """Packets sent on a perfect clock and delivered with a constant delay (no jitter)."""
    for seq in seqs:
        ts = seq * samples
        stats.on_packet(seq & 0xFFFF, ts & 0xFFFFFFFF, 160, 0.05 + ts / clock_rate)


def test_every_tenth_packet_lost_is_ten_percent():
    stats = ReceiveStatistics(1)
    seqs = [s for s in range(1000) if s % 10 != 9]
    for seq in seqs:
        stats.on_packet(seq, seq * 160, 160, seq * 0.02)
    # Probation swallows packet 0, so the base is 1: 998 expected, 99 of them missing.
    assert stats.expected == 998
    assert stats.cumulative_lost == 99
    assert stats.cumulative_lost / stats.expected == pytest.approx(0.10, abs=0.002)
    block = stats.report_block(20.0)
    assert block.fraction_lost == (99 << 8) // 998
    assert block.loss_ratio == pytest.approx(0.1, abs=0.005)
    assert block.highest_sequence == 998


def test_fraction_lost_is_per_interval():
    stats = ReceiveStatistics(1)
    feed(stats, range(0, 101))
    assert stats.report_block(3.0).fraction_lost == 0
    feed(stats, [s for s in range(101, 201) if s % 4 != 1])  # a quarter lost
    assert stats.report_block(6.0).fraction_lost == 64
    feed(stats, range(201, 301))
    block = stats.report_block(9.0)
    assert block.fraction_lost == 0
    assert block.cumulative_lost == 25


def test_sequence_wrap_extends_and_counts_no_loss():
    stats = ReceiveStatistics(1)
    feed(stats, range(65500, 65600))
    assert stats.cycles == 1 << 16
    assert stats.extended_max_seq == 65599
    assert stats.cumulative_lost == 0


def test_probation_then_restart_after_large_jump():
    stats = ReceiveStatistics(1)
    assert stats.on_packet(100, 0, 160, 0.0) is False  # probation
    assert stats.on_packet(101, 160, 160, 0.02) is True
    feed(stats, range(102, 110))
    assert stats.on_packet(40000, 0, 160, 1.0) is False  # one far packet is not believed
    assert stats.on_packet(40001, 160, 160, 1.02) is True  # two in a row: the sender restarted
    assert stats.base_seq == 40001
    assert stats.cumulative_lost == 0


def test_duplicates_make_loss_negative():
    stats = ReceiveStatistics(1)
    feed(stats, [1, 2, 3, 3, 4])
    assert stats.cumulative_lost == -1
    assert stats.packets == 5 and stats.octets == 800


def test_jitter_is_zero_for_perfect_timing():
    stats = ReceiveStatistics(1)
    feed(stats, range(500))
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_follows_rfc3550_estimator():
    # Every other packet arrives 10 ms late, so |D| is 80 timestamp units for each pair.
    stats = ReceiveStatistics(1)
    for seq in range(200):
        late = 0.010 if seq % 2 else 0.0
        stats.on_packet(seq, seq * 160, 160, seq * 0.02 + late)
    # J(n) = J(n-1) + (80 - J(n-1)) / 16 from the third packet on (first two: probation + baseline).
    expected = 0.0
    for _ in range(198):
        expected += (80 - expected) / 16
    assert stats.jitter == pytest.approx(expected, rel=1e-9)
    assert stats.jitter_ms == pytest.approx(expected / 8, rel=1e-9)
    assert stats.report_block(4.0).jitter == int(expected)


def test_jitter_survives_timestamp_wrap():
    stats = ReceiveStatistics(1)
    base = 0xFFFFFFFF - 160 * 50
    for i in range(100):
        stats.on_packet(i, (base + i * 160) & 0xFFFFFFFF, 160, i * 0.02)
    assert stats.jitter < 1e-6


def test_report_block_carries_lsr_and_dlsr():
    stats = ReceiveStatistics(7)
    feed(stats, range(10))
    sr_ntp = ntp_timestamp(1_700_000_000.0)
    stats.on_sender_report(sr_ntp, now=5.0)
    block = stats.report_block(now=5.5)
    assert block.ssrc == 7
    assert block.last_sr == compact_ntp(sr_ntp)
    assert block.delay_since_last_sr == 32768


def test_mos_perfect_g711_is_about_4_4():
    assert estimate_mos(0.0) == pytest.approx(4.41, abs=0.01)
    assert r_factor(0.0) == pytest.approx(93.2)


def test_mos_falls_with_loss_jitter_and_delay():
    perfect = estimate_mos(0.0)
    assert estimate_mos(0.01) < perfect
    assert estimate_mos(0.05) < estimate_mos(0.01)
    # Ie_eff = 95 * 5 / (5 + 25.1) = 15.78, R = 77.42
    assert estimate_mos(0.05) == pytest.approx(mos_from_r(93.2 - 95 * 5 / 30.1), abs=1e-9)
    assert 3.85 < estimate_mos(0.05) < 3.95
    assert estimate_mos(0.05, plc=False) < estimate_mos(0.05, plc=True)
    assert estimate_mos(0.0, jitter_ms=40) < perfect
    assert estimate_mos(0.0, one_way_delay_ms=300) < estimate_mos(0.0, one_way_delay_ms=150) < perfect
    assert estimate_mos(1.0) < 1.5


def test_mos_from_r_bounds():
    assert mos_from_r(-5) == 1.0
    assert mos_from_r(120) == 4.5
    assert mos_from_r(50) == pytest.approx(1 + 1.75 + 50 * -10 * 50 * 7e-6)


def test_snapshot_combines_both_directions():
    received = ReceiveStatistics(1)
    feed(received, [s for s in range(101) if s != 50])
    sent = SendStatistics()
    for _ in range(3):
        sent.record(160)
    snap = snapshot(received, sent)
    assert isinstance(snap, MediaStatsSnapshot)
    assert (snap.packets_sent, snap.bytes_sent) == (3, 480)
    assert (snap.packets_received, snap.bytes_received, snap.packets_lost) == (100, 16000, 1)
    assert snap.jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert snap.estimated_mos == pytest.approx(estimate_mos(0.01), abs=1e-9)


@pytest.mark.parametrize("received", [None, ReceiveStatistics(1)])
def test_a_leg_that_received_nothing_measured_nothing(received):
    """PROTOCOL.md §6: no RTP in means jitter 0 and MOS 0, not the 4.4 a perfect stream would get,
    however much was sent and whatever delay is known."""
    sent = SendStatistics()
    for _ in range(100):
        sent.record(160)
    snap = snapshot(received, sent, one_way_delay_ms=40.0)
    assert (snap.packets_sent, snap.packets_received) == (100, 0)
    assert (snap.jitter_ms, snap.estimated_mos) == (0.0, 0.0)
    one_packet = ReceiveStatistics(1)
    one_packet.on_packet(7, 160, 160, 0.02)
    assert snapshot(one_packet, sent).estimated_mos == pytest.approx(estimate_mos(0.0), abs=1e-9)
