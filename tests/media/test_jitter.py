import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.media.jitter import JitterBuffer

TICK = 0.02


def frame(seq):
    return seq.to_bytes(2, "big") * 80


def test_in_order_stream_plays_every_frame_after_initial_delay():
    jb = JitterBuffer()
    out = []
    for i in range(50):
        jb.push(i, i * 160, frame(i), i * TICK + 0.005)
        out.append(jb.pop(i * TICK + 0.02))
    assert out == [frame(i) for i in range(50)]
    assert jb.target_delay_ms == 20
    assert (jb.concealed, jb.late, jb.duplicates, jb.underruns) == (0, 0, 0, 0)


def test_waits_for_target_before_playing():
    jb = JitterBuffer(min_delay_ms=60)
    jb.push(0, 0, frame(0), 0.0)
    assert jb.pop(0.0) is None
    jb.push(1, 160, frame(1), 0.02)
    assert jb.pop(0.02) is None
    jb.push(2, 320, frame(2), 0.04)
    assert jb.pop(0.04) == frame(0)


def test_reordered_packets_play_in_sequence():
    jb = JitterBuffer(min_delay_ms=60)
    for seq in (0, 2, 1, 4, 3, 5):
        jb.push(seq, seq * 160, frame(seq), 0.0)
    assert [jb.pop(0.1 + k * TICK) for k in range(6)] == [frame(s) for s in range(6)]


def test_gap_returns_none_and_continues():
    jb = JitterBuffer(min_delay_ms=100)
    for seq in (0, 1, 3, 4):
        jb.push(seq, seq * 160, frame(seq), 0.0)
    got = [jb.pop(0.1 + k * TICK) for k in range(5)]
    assert got == [frame(0), frame(1), None, frame(3), frame(4)]
    assert jb.concealed == 1


def test_duplicates_and_too_late_packets_are_dropped_and_counted():
    jb = JitterBuffer()
    assert jb.push(0, 0, frame(0), 0.0)
    assert not jb.push(0, 0, frame(0), 0.001)  # duplicate while buffered
    jb.push(2, 320, frame(2), 0.01)
    assert jb.pop(0.02) == frame(0)
    assert jb.pop(0.04) is None  # 1 missing, 2 waiting: concealed
    assert not jb.push(0, 0, frame(0), 0.05)  # duplicate of a played frame
    assert not jb.push(1, 160, frame(1), 0.05)  # arrived after its slot
    assert (jb.duplicates, jb.late, jb.concealed) == (2, 1, 1)
    assert jb.pop(0.06) == frame(2)


def test_sequence_wrap():
    jb = JitterBuffer(min_delay_ms=120)
    seqs = [65533, 65534, 65535, 0, 1, 2]
    for k, seq in enumerate(seqs):
        jb.push(seq, k * 160, frame(seq), 0.0)
    assert [jb.pop(1.0 + k * TICK) for k in range(6)] == [frame(s) for s in seqs]


def test_size_is_bounded():
    jb = JitterBuffer(max_delay_ms=200)
    for seq in range(100):
        jb.push(seq, seq * 160, frame(seq), seq * 0.001)
    assert len(jb) <= jb.capacity == 20
    assert jb.overflow == 100 - jb.capacity
    assert jb.pop(1.0) == frame(80)


def test_large_sequence_jump_resyncs():
    jb = JitterBuffer()
    for seq in range(5):
        jb.push(seq, seq * 160, frame(seq), seq * TICK)
        jb.pop(seq * TICK + 0.01)
    jb.push(30000, 999, frame(30000), 0.2)
    assert jb.resyncs == 1
    assert jb.pop(0.25) == frame(30000)


def test_underrun_rebuffers_to_a_grown_target():
    jb = JitterBuffer(min_delay_ms=40)
    jb.push(0, 0, frame(0), 0.00)
    jb.push(1, 160, frame(1), 0.02)
    assert jb.pop(0.02) == frame(0)
    jb.push(2, 320, frame(2), 0.04)
    assert jb.pop(0.04) == frame(1)
    assert jb.pop(0.06) == frame(2)
    assert jb.pop(0.08) is None  # packet 3 is late: underrun
    assert jb.underruns == 1 and jb.concealed == 0
    jb.push(3, 480, frame(3), 0.085)  # 25 ms late, so the target grows to 60 ms
    assert jb.target_delay_ms == 60
    assert jb.pop(0.10) is None  # re-buffering
    jb.push(4, 640, frame(4), 0.10)
    assert jb.pop(0.12) is None
    jb.push(5, 800, frame(5), 0.12)
    assert [jb.pop(0.14), jb.pop(0.16), jb.pop(0.18)] == [frame(3), frame(4), frame(5)]
    assert jb.late == 0  # stalling, not skipping, so nothing that arrived was thrown away


def simulate(jb, jitter_s, packets, start_seq=0, start_time=0.0, rng=None):
    """Send on a 20 ms clock with random extra delay; pop on the receiver's 20 ms clock."""
    rng = rng or random.Random(1)
    arrivals = sorted(
        (start_time + k * TICK + rng.uniform(0, jitter_s), start_seq + k) for k in range(packets)
    )
    played = silent = 0
    i = 0
    tick = start_time + 0.013
    end = start_time + packets * TICK + 0.4
    while tick < end:
        while i < len(arrivals) and arrivals[i][0] <= tick:
            at, seq = arrivals[i]
            jb.push(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, frame(seq & 0xFFFF), at)
            i += 1
        if jb.pop(tick) is None:
            silent += 1
        else:
            played += 1
        tick += TICK
    return played, silent


def test_target_delay_adapts_up_and_back_down():
    jb = JitterBuffer()
    simulate(jb, 0.0, 200)
    assert jb.target_delay_ms == 20
    simulate(jb, 0.1, 500, start_seq=200, start_time=4.0)
    assert 100 <= jb.target_delay_ms <= 200
    assert jb.target_delay_ms <= jb.max_delay_ms
    # Once adapted, a jittery stream rarely loses packets to lateness.
    late_after_adapt = jb.late
    simulate(jb, 0.1, 500, start_seq=700, start_time=14.0, rng=random.Random(2))
    assert jb.late - late_after_adapt <= 5
    simulate(jb, 0.0, 1500, start_seq=1200, start_time=24.0)
    assert jb.target_delay_ms <= 40
    assert jb.buffered_ms <= 80  # latency trimmed back once the network calmed down
    assert jb.dropped > 0


def test_transit_step_does_not_pin_the_target():
    jb = JitterBuffer()
    simulate(jb, 0.0, 100)
    simulate(jb, 0.0, 1500, start_seq=100, start_time=30.0)  # 28 s step in transit, then steady
    assert jb.target_delay_ms <= 40


def test_target_is_clamped():
    jb = JitterBuffer(min_delay_ms=20, max_delay_ms=100)
    simulate(jb, 0.5, 300)
    assert jb.target_delay_ms == 100


def test_every_frame_accounted_for():
    jb = JitterBuffer()
    played, _ = simulate(jb, 0.05, 400, rng=random.Random(7))
    assert played == jb.played
    assert jb.received + jb.late + jb.duplicates == 400
    assert jb.played + jb.dropped + jb.overflow + len(jb) == jb.received


def test_reset_clears_audio_but_keeps_counters():
    jb = JitterBuffer()
    jb.push(0, 0, frame(0), 0.0)
    jb.push(0, 0, frame(0), 0.0)
    jb.reset()
    assert len(jb) == 0 and jb.duplicates == 1
    assert jb.push(500, 0, frame(500), 1.0)


def test_rejects_bad_delay_bounds():
    with pytest.raises(ValueError):
        JitterBuffer(min_delay_ms=300, max_delay_ms=200)


# --- ReorderBuffer: hand over in order at once, wait only for what is missing --------------------

from trunkline.media.jitter import ReorderBuffer  # noqa: E402


def test_reorder_buffer_hands_over_in_order_packets_on_arrival():
    rb = ReorderBuffer()
    for i in range(50):
        assert rb.push(i, frame(i), i * TICK + 0.003) == [frame(i)]
        assert rb.tick(i * TICK + 0.015) == []  # a steady stream never needs the clock
    assert (rb.delivered, rb.concealed, rb.idle_frames, rb.late) == (50, 0, 0, 0)


def test_reorder_buffer_holds_an_early_packet_until_the_missing_one_arrives():
    rb = ReorderBuffer()
    assert rb.push(0, frame(0), 0.0) == [frame(0)]
    assert rb.push(2, frame(2), 0.021) == []  # 1 is due at 20 ms and is waited for a little longer
    assert rb.push(1, frame(1), 0.025) == [frame(1), frame(2)]


def test_reorder_buffer_gives_up_on_a_lost_packet_once_it_is_overdue():
    rb = ReorderBuffer()
    for i in range(10):
        rb.push(i, frame(i), i * TICK)
    assert rb.wait_ms == 10  # a perfectly paced stream: half a frame
    # 10 is lost; 11 arrives on time, 20 ms after 10 was due: 10 is overdue by then.
    assert rb.push(11, frame(11), 11 * TICK) == [None, frame(11)]
    assert rb.concealed == 1
    assert rb.push(10, frame(10), 11 * TICK + 0.001) == []
    assert rb.late == 1


def test_reorder_buffer_waits_longer_when_the_network_jitters():
    rb = ReorderBuffer(max_wait_ms=120)
    for i in range(200):
        rb.push(i, frame(i), i * TICK)
    rb.jitter = 0.015  # what the owner's RFC 3550 statistics measured
    assert rb.wait_ms == 45
    rb.push(201, frame(201), 200 * TICK + 0.020)  # 200 missing: 201 waits for it
    due = 200 * TICK + 0.045  # 200 was due a frame after 199, plus the wait
    assert rb.tick(due - 0.001) == []
    assert rb.tick(due + 0.001) == [None, frame(201)]
    rb.jitter = 1.0
    assert rb.wait_ms == 120  # capped


def test_reorder_buffer_fills_silence_with_one_none_per_tick():
    rb = ReorderBuffer()
    assert rb.tick(0.0) == [None]  # nothing heard yet: the consumer still gets its 50 frames/s
    rb.push(0, frame(0), 0.005)
    assert rb.tick(0.020) == []
    got = [rb.tick(0.040 + k * TICK) for k in range(5)]  # the far end stopped sending (silence suppression)
    assert got == [[None]] * 5
    # It resumes with the next sequence number (RFC 3550 keeps counting through suppressed silence).
    assert rb.push(1, frame(1), 0.150) == [frame(1)]
    assert rb.idle_frames == 6


def test_reorder_buffer_does_not_wait_for_a_frame_whose_time_went_out_as_silence():
    rb = ReorderBuffer(max_wait_ms=200)
    rb.jitter = 0.010  # jittery: a missing frame is waited for 30 ms
    for i in range(10):
        rb.push(i, frame(i), i * TICK)
    assert rb.tick(0.195) == []  # 9 just came
    assert rb.tick(0.215) == []  # 10 was expected at 0.200 and is given 30 ms more
    assert rb.tick(0.235) == [None]  # 10 never came: its time goes out as silence
    assert rb.push(11, frame(11), 0.237) == [frame(11)]  # not held back waiting for 10
    assert rb.push(10, frame(10), 0.238) == []


def test_reorder_buffer_a_late_packet_after_idle_is_still_delivered():
    rb = ReorderBuffer()
    rb.push(0, frame(0), 0.0)
    assert rb.tick(0.020) == []
    assert rb.tick(0.040) == [None]
    assert rb.push(1, frame(1), 0.041) == [frame(1)]


def test_reorder_buffer_jumps_over_a_long_gap_instead_of_flooding_nones():
    rb = ReorderBuffer(max_wait_ms=100)
    rb.push(0, frame(0), 0.0)
    assert rb.push(500, frame(500), 0.020) == []  # 1 might still come
    assert rb.tick(0.060) == [frame(500)]
    assert rb.concealed == 0 and rb.resyncs == 1


def test_reorder_buffer_restarted_stream_resyncs_and_duplicates_are_dropped():
    rb = ReorderBuffer()
    rb.push(100, frame(100), 0.0)
    assert rb.push(100, frame(100), 0.001) == []  # duplicate of a delivered one: counts as late
    rb.push(102, frame(102), 0.002)
    assert rb.push(102, frame(102), 0.003) == []
    assert rb.duplicates == 1
    assert rb.push(40000, frame(7), 0.5) == [frame(7)]
    assert rb.resyncs == 1


def test_reorder_buffer_sequence_wraps():
    rb = ReorderBuffer()
    seqs = [65534, 65535, 0, 1]
    got = [rb.push(s, frame(s), k * TICK) for k, s in enumerate(seqs)]
    assert got == [[frame(s)] for s in seqs]


@given(
    st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=120),
    st.integers(0, 65535),
)
def test_reorder_buffer_hands_each_packet_over_at_most_once_and_in_order(arrivals, base):
    """Whatever the network does (reordering, duplicates, losses, pauses), audio comes out in sequence
    order and each packet at most once."""
    rb = ReorderBuffer()
    delivered: list[int] = []
    now = 0.0
    for offset, tick in arrivals:
        seq = (base + offset) & 0xFFFF
        out = rb.tick(now) if tick else rb.push(seq, seq.to_bytes(2, "big"), now)
        delivered += [int.from_bytes(f, "big") for f in out if f is not None]
        now += TICK / 2
    unwrapped = [(s - base) & 0xFFFF for s in delivered]
    assert unwrapped == sorted(set(unwrapped))


@pytest.mark.parametrize("packet_ms", [10, 30, 60])
@pytest.mark.parametrize("tick_phase_ms", [0, 5, 10, 15])
def test_reorder_buffer_paces_by_the_carriers_packet_time_not_20_ms(packet_ms, tick_phase_ms):
    """Packets of 30 ms arriving 8 ms late every other time: with a 20 ms idea of the pace, a tick
    between two of them took the next one for overdue and handed over a spurious None (20 ms of
    silence the caller never made)."""
    rb = ReorderBuffer()
    payload = bytes(8 * packet_ms)  # G.711: 8 bytes a millisecond
    out: list[bytes | None] = []
    events = [(seq * packet_ms / 1000 + (0.008 if seq % 2 else 0.0), "packet", seq) for seq in range(100)]
    events += [(k * 0.020 + tick_phase_ms / 1000, "tick", None) for k in range(100 * packet_ms // 20)]
    for now, kind, seq in sorted(events):
        out += rb.push(seq, payload, now) if kind == "packet" else rb.tick(now)
    assert None not in out
    assert len(out) == 100
