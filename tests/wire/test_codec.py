"""Envelope compatibility rules (§3), hostile input, framing (§2) and round trips of every DTO."""

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.enums import DialplanAction
from trunkline.wire import (
    FRAME_LIMIT,
    BucketCallList,
    EventStreamRequest,
    FrameDecoder,
    FrameError,
    ListBucketsResponse,
    OriginateRequest,
    WireError,
    encode_frame,
    parse_request_frame,
    request_frame_ready,
)
from trunkline.wire import dtos
from trunkline.wire.envelope import BOOL, BYTES, DOUBLE, INT32, INT64, STRING, UINT32, UINT64, WireType

ALL_DTOS = [getattr(dtos, n) for n in dtos.__all__ if n != "Dto"]


def envelope(payload: bytes, v: int = 0, cv: int = 0) -> bytes:
    return struct.pack("<BBi", v, cv, len(payload)) + payload


def test_unknown_tail_is_skipped_and_outer_bytes_untouched():
    known = struct.pack("<i", 3) + b"abc"
    data = envelope(known + b"\x01\x02future-fields", v=3) + b"OUTER"
    assert EventStreamRequest.from_bytes(data) == EventStreamRequest(client_id="abc")


def test_truncated_envelope_zero_fills_trailing_fields():
    payload = struct.pack("<i", 2) + b"t1" + struct.pack("<i", 3) + b"+44"
    decoded = OriginateRequest.from_bytes(envelope(payload) + b"\xff" * 64)  # outer bytes are never read
    assert decoded == OriginateRequest(trunk_id="t1", to="+44")
    assert decoded.default_app is DialplanAction.HANGUP


def test_nested_envelope_reader_stays_inside_its_element():
    elem_with_tail = envelope(struct.pack("<i", 1) + b"a" + struct.pack("<i", 5) + b"EXTRA")
    data = envelope(struct.pack("<I", 2) + elem_with_tail + envelope(struct.pack("<i", 1) + b"b"))
    buckets = ListBucketsResponse.from_bytes(data).buckets
    assert [(b.bucket_id, b.pending_count) for b in buckets] == [("a", 5), ("b", 0)]


@pytest.mark.parametrize(
    "data,needle",
    [
        (envelope(struct.pack("<i", -1)), "negative length"),
        (struct.pack("<BBi", 0, 0, 50) + b"\x00" * 10, "past the end"),
        (struct.pack("<BBi", 0, 0, -4), "past the end"),
        (b"\x00\x00\x07", "header truncated"),
        (envelope(struct.pack("<i", 10) + b"abc"), "needs 10 bytes"),
        (envelope(struct.pack("<i", 1) + b"\xff"), "not UTF-8"),
        (envelope(b"\x01\x00"), "truncated inside the field"),
        (envelope(b"", v=9, cv=9), "needs schema v9"),
    ],
)
def test_malformed_envelopes_raise_wire_error(data, needle):
    with pytest.raises(WireError, match=needle):
        EventStreamRequest.from_bytes(data)


def test_enum_out_of_range_is_a_validation_failure():
    payload = struct.pack("<i", 0) + struct.pack("<i", 13) + struct.pack("<i", 0)
    with pytest.raises(WireError, match="not a DialplanAction"):
        dtos.ExecuteDialplanRequest.from_bytes(envelope(payload))


def test_hostile_vector_count_refused_before_allocating():
    with pytest.raises(WireError, match="cannot fit"):
        BucketCallList.from_bytes(envelope(struct.pack("<I", 0xFFFFFFFF)))


def test_encoding_out_of_range_value_is_a_wire_error():
    with pytest.raises(WireError, match="out of range"):
        OriginateRequest(max_duration_ms=2**31).to_bytes()


# --- frames ---------------------------------------------------------------------------------


def test_both_request_length_conventions_are_accepted():
    frame = encode_frame(959835745, EventStreamRequest(client_id="abc"))
    cffi = struct.pack("<I", 8 + 13) + frame[4:]
    for data in (frame, cffi):
        method_id, env = parse_request_frame(data)
        assert method_id == 959835745
        assert EventStreamRequest.from_bytes(env).client_id == "abc"
    assert request_frame_ready(frame) and not request_frame_ready(cffi)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x05\x00\x00", struct.pack("<II", 0, 1), struct.pack("<II", FRAME_LIMIT + 1, 1) + b"\x00" * 6,
     struct.pack("<II", 40, 1) + b"\x00" * 6],
)
def test_bad_request_frames(data):
    with pytest.raises(FrameError):
        parse_request_frame(data)


def test_uni_stream_decoder_cuts_frames_across_arbitrary_chunks():
    frames = [encode_frame(7, EventStreamRequest(client_id=str(i) * i)) for i in range(1, 6)]
    blob = b"".join(frames)
    dec = FrameDecoder()
    got = []
    for i in range(0, len(blob), 3):
        got += dec.feed(blob[i : i + 3])
    dec.close()
    assert [EventStreamRequest.from_bytes(env).client_id for _, env in got] == [str(i) * i for i in range(1, 6)]


def test_uni_stream_decoder_rejects_oversized_and_truncated_streams():
    dec = FrameDecoder()
    with pytest.raises(FrameError):
        dec.feed(struct.pack("<I", FRAME_LIMIT + 1))
    with pytest.raises(FrameError):
        dec.feed(b"more")  # stays broken: its framing is lost
    dec2 = FrameDecoder()
    dec2.feed(encode_frame(1, EventStreamRequest())[:-1])
    with pytest.raises(FrameError, match="inside a frame"):
        dec2.close()


# --- properties -----------------------------------------------------------------------------

_PRIMS = {
    STRING.name: st.text(max_size=20),
    BYTES.name: st.binary(max_size=20),
    BOOL.name: st.booleans(),
    INT32.name: st.integers(-(2**31), 2**31 - 1),
    UINT32.name: st.integers(0, 2**32 - 1),
    INT64.name: st.integers(-(2**63), 2**63 - 1),
    UINT64.name: st.integers(0, 2**64 - 1),
    DOUBLE.name: st.floats(allow_nan=False),
}


def _strategy(cls):
    import typing

    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {}
    for f in dataclasses.fields(cls):
        kwargs[f.name] = _field_strategy(hints[f.name])
    return st.builds(cls, **kwargs)


def _field_strategy(hint):
    import typing
    from enum import IntEnum

    from trunkline.wire.envelope import _VecOf

    if typing.get_origin(hint) is typing.Annotated:
        meta = typing.get_args(hint)[1]
        if isinstance(meta, WireType):
            return _PRIMS[meta.name]
        if isinstance(meta, _VecOf):
            return st.lists(_field_strategy(meta.item), max_size=4)
    if hint is str:
        return _PRIMS["string"]
    if hint is bytes:
        return _PRIMS["bytes"]
    if hint is bool:
        return _PRIMS["bool"]
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return st.sampled_from(list(hint))
    return _strategy(hint)


@pytest.mark.parametrize("cls", ALL_DTOS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_dto_round_trips(cls, data):
    message = data.draw(_strategy(cls))
    assert cls.from_bytes(message.to_bytes()) == message


@pytest.mark.parametrize("cls", ALL_DTOS, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=200))
def test_any_bytes_decode_or_raise_wire_error_only(cls, blob):
    try:
        cls.from_bytes(blob)
    except WireError:
        pass
