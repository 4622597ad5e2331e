import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.ai.framing import FrameCutter


def test_30ms_packets_become_20ms_frames_with_the_rest_carried_over():
    cutter = FrameCutter(160)
    stream = bytes(range(240)) * 3
    first = cutter.cut(stream[:240])
    assert [len(f) for f in first] == [160] and cutter.pending == stream[160:240]
    second = cutter.cut(stream[240:480])
    assert [len(f) for f in second] == [160, 160] and cutter.pending == b""
    third = cutter.cut(stream[480:])
    assert [len(f) for f in third] == [160] and cutter.pending == stream[640:]
    assert b"".join(first + second + third) == stream[:640]


def test_10ms_packets_go_out_in_pairs():
    cutter = FrameCutter(160)
    assert cutter.cut(b"a" * 80) == []
    assert cutter.cut(b"b" * 80) == [b"a" * 80 + b"b" * 80]
    assert cutter.pending == b""


def test_frame_size_must_be_positive():
    with pytest.raises(ValueError):
        FrameCutter(0)


@given(st.sampled_from([160, 320]), st.lists(st.binary(max_size=1000), max_size=20))
def test_any_packet_times_keep_every_byte_in_order(size, payloads):
    cutter = FrameCutter(size)
    frames = [frame for payload in payloads for frame in cutter.cut(payload)]
    assert all(len(frame) == size for frame in frames)
    assert len(cutter.pending) < size
    assert b"".join(frames) + cutter.pending == b"".join(payloads)
