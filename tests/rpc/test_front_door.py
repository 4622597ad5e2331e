"""The RPC front door against a live gateway over QUIC on loopback."""

from __future__ import annotations

import asyncio
import struct

import pytest

from tests.conftest import client_for, wait_until
from tests.rawquic import raw_connection
from trunkline.calls.events import CallEvent
from trunkline.enums import ErrorCode, EventType
from trunkline.sdk import InternalError, InvalidDestination, InvalidTrunk, ValidationFailed
from trunkline.wire import METHODS_BY_NAME, encode_frame
from trunkline.wire import dtos as d

EVENTS_ID = METHODS_BY_NAME["StreamEvents"].method_id


def event(call_sid: str, client_id: str = "", tenant: str = "local", etype=EventType.CHANNEL_CREATE) -> CallEvent:
    return CallEvent(call_sid=call_sid, event_type=etype, status="INITIATED", tenant_id=tenant, client_id=client_id)


async def test_open_mode_authenticate_names_the_default_tenant(client):
    response = await client.authenticate("")
    assert (response.tenant_id, response.error_code) == ("local", ErrorCode.SUCCESS)


LATER = [
    ("answer_incoming_call", ("c1",), {}, "AnswerIncomingCall"),
    ("originate_bulk", (), {"csv_url": "https://x/a.csv"}, "OriginateBulk"),
    ("abort_bulk", ("camp",), {}, "AbortBulk"),
    ("barge", ("c1",), {}, "Barge"),
    ("get_incoming_calls", (), {}, "GetIncomingCalls"),
]


@pytest.mark.parametrize("sugar,args,kwargs,method", LATER, ids=[m for *_, m in LATER])
async def test_methods_of_later_engines_answer_a_typed_internal_error(client, sugar, args, kwargs, method):
    with pytest.raises(InternalError) as err:
        await getattr(client, sugar)(*args, **kwargs)
    assert err.value.code == ErrorCode.ERR_INTERNAL_ERROR
    assert err.value.method == method
    if METHODS_BY_NAME[method].has_error_field:  # others can only say it through a stream reset
        assert err.value.message == f"not available yet: {method}"


async def test_call_methods_refuse_unknown_calls_and_trunks(client):
    with pytest.raises(ValidationFailed, match="no active call 'nope'"):
        await client.terminate("nope")
    with pytest.raises(ValidationFailed, match="no active call 'nope'"):
        await client.execute_dialplan("nope", 1)
    with pytest.raises(InvalidTrunk):
        await client.dial("+15551234567", trunk_id="missing")
    with pytest.raises(InvalidDestination):
        await client.dial("12345", trunk_id="carrier")
    assert await client.get_active_buckets() == []
    assert await client.get_bucket_calls("default") == []
    assert await client.execute_bucket_action("default", 0) == 0
    with pytest.raises(ValidationFailed):  # a reset with 0x106: no error field to carry the message
        await client.execute_bucket_action("default", 9)


async def test_unknown_method_resets_only_that_stream(gateway, client):
    async with raw_connection(gateway) as raw:
        bad = raw.send(struct.pack("<II", 10, 0xDEADBEEF) + b"\x00" * 6)
        assert await raw.outcome(bad) == ("reset", 0x106)
        good = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest(client_id="x")))
        assert await raw.outcome(good) == ("data", encode_frame(EVENTS_ID, d.Empty()))
    assert (await client.authenticate("")).tenant_id == "local"


async def test_cffi_length_convention_and_a_client_that_never_reads(gateway):
    """The public C-FFI core writes ``length = 8 + n`` and drops its answers; it must be served and
    must not disturb the connection."""
    envelope = d.EventStreamRequest(client_id="cffi").to_bytes()
    cffi_frame = struct.pack("<II", 8 + len(envelope), EVENTS_ID) + envelope
    async with raw_connection(gateway) as raw:
        ignored = [raw.send(cffi_frame) for _ in range(100)]  # within the initial 128-stream credit
        for stream_id in ignored[::3]:
            raw.reset(stream_id)  # some even reset their request stream
        checked = raw.send(cffi_frame)
        assert await raw.outcome(checked) == ("data", encode_frame(EVENTS_ID, d.Empty()))
    async with client_for(gateway) as fresh:
        assert (await fresh.authenticate("")).tenant_id == "local"


async def test_request_without_fin_is_answered_when_complete(gateway):
    async with raw_connection(gateway) as raw:
        stream_id = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest(client_id="nofin")), fin=False)
        assert await raw.outcome(stream_id) == ("data", encode_frame(EVENTS_ID, d.Empty()))


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack("<II", 0, EVENTS_ID),  # zero length
        struct.pack("<II", 99, EVENTS_ID) + b"\x00" * 6,  # length matches neither convention
        b"\x01\x02\x03",  # truncated before the method id
        struct.pack("<II", (1 << 20) + 1, EVENTS_ID) + b"\x00" * 6,  # over the limit
    ],
    ids=["zero", "mismatch", "truncated", "oversized"],
)
async def test_malformed_frames_reset_the_stream_with_validation_code(gateway, frame):
    async with raw_connection(gateway) as raw:
        assert await raw.outcome(raw.send(frame)) == ("reset", 0x106)


async def test_oversized_request_body_is_cut_off(gateway):
    async with raw_connection(gateway) as raw:
        stream_id = raw.send(struct.pack("<II", 4 + (1 << 20) + 100, EVENTS_ID) + b"\x00" * ((1 << 20) + 100))
        assert await raw.outcome(stream_id) == ("reset", 0x106)


async def test_malformed_envelope_gets_validation_error_in_the_error_field(client):
    with pytest.raises(ValidationFailed, match="Originate.*past the end"):
        await client.call("Originate", _BrokenEnvelope())


class _BrokenEnvelope(d.Empty):
    """Claims 100 bytes of fields but carries none."""

    def to_bytes(self) -> bytes:
        return struct.pack("<BBi", 0, 0, 100)


async def test_open_mode_takes_any_named_tenant_and_acts_for_the_default_one(gateway, client, caplog):
    """§5: the public SDKs put a fixed ``test_tenant`` in every request; open mode has no token to
    match it with, so it is logged and never refused."""
    caplog.set_level("DEBUG", logger="trunkline.rpc.handlers")
    call = await client.dial("+15551234567", trunk_id="carrier", tenant_id="test_tenant")
    # the default tenant's call; nothing answers on the trunk, so it may have failed already
    assert gateway.calls.find("local", call.call_sid, include_ended=True) is not None
    assert "request names tenant 'test_tenant'" in caplog.text
    with pytest.raises(InternalError):  # not Unauthorized: past the tenant check, on to the absent campaign engine
        await client.originate_bulk(template_tenant_id="test_tenant", template_trunk_id="carrier")


async def test_events_route_by_client_id_and_tenant(gateway):
    async with client_for(gateway, client_id="A") as a, client_for(gateway, client_id="B") as b:
        stream_a, stream_b = a.events().__aiter__(), b.events().__aiter__()
        next_a, next_b = asyncio.create_task(stream_a.__anext__()), asyncio.create_task(stream_b.__anext__())
        await wait_until(lambda: len(gateway.events._by_tenant.get("local", ())) == 2)
        gateway.events.publish(event("for-a", client_id="A"))
        assert (await asyncio.wait_for(next_a, 5)).call_sid == "for-a"
        assert not next_b.done()
        gateway.events.publish(event("broadcast"))
        assert (await asyncio.wait_for(next_b, 5)).call_sid == "broadcast"
        assert (await asyncio.wait_for(stream_a.__anext__(), 5)).call_sid == "broadcast"
        gateway.events.publish(event("other-tenant", tenant="acme"))
        gateway.events.publish(event("for-b", client_id="B"))
        assert (await asyncio.wait_for(stream_b.__anext__(), 5)).call_sid == "for-b"


async def test_events_kept_while_away_are_replayed_in_order(gateway):
    async with client_for(gateway, client_id="cx") as first:
        stream = first.events().__aiter__()
        pending = asyncio.create_task(stream.__anext__())
        await wait_until(lambda: gateway.events._by_client.get(("local", "cx")))
        pending.cancel()
    await wait_until(lambda: not gateway.events._by_client.get(("local", "cx")))
    for i in range(5):
        gateway.events.publish(event(f"call-{i}", client_id="cx"))
    async with client_for(gateway, client_id="cx") as second:
        stream = second.events().__aiter__()
        got = [(await asyncio.wait_for(stream.__anext__(), 5)).call_sid for _ in range(5)]
    assert got == [f"call-{i}" for i in range(5)]


async def test_sdk_event_stream_survives_a_dropped_connection(gateway):
    async with client_for(gateway, client_id="resilient") as c:
        stream = c.events().__aiter__()
        first = asyncio.create_task(stream.__anext__())
        await wait_until(lambda: gateway.events._by_client.get(("local", "resilient")))
        gateway.events.publish(event("before"))
        assert (await asyncio.wait_for(first, 5)).call_sid == "before"
        c._protocol.close()  # the network goes away under the SDK
        await wait_until(lambda: not gateway.events._by_client.get(("local", "resilient")))
        gateway.events.publish(event("while-away", client_id="resilient"))
        assert (await asyncio.wait_for(stream.__anext__(), 10)).call_sid == "while-away"


async def test_audio_frames_flow_both_ways(gateway, client):
    await client.authenticate("")
    for i in range(3):
        await client.send_audio("call-1", b"\xff" * 160)
    await client.send_audio("call-1", b"", end_of_stream=True)
    await wait_until(lambda: gateway.handlers.audio_frames_dropped == 4)

    connection = next(iter(gateway.rpc._server._protocols.values()))
    frames = client.audio("call-2").__aiter__()
    for seq in range(3):
        assert connection.send_audio("call-2", bytes([seq]) * 160, "PCMU", seq, seq == 2)
    got = [await asyncio.wait_for(frames.__anext__(), 5) for _ in range(3)]
    assert [(f.sequence_number, f.payload[:1], f.end_of_stream) for f in got] == [
        (0, b"\x00", False), (1, b"\x01", False), (2, b"\x02", True)]


async def test_garbage_on_an_audio_stream_stops_only_that_stream(gateway, client):
    async with raw_connection(gateway) as raw:
        stream_id = raw.send(b"\xff\xff\xff\xff garbage", fin=False, uni=True)
        assert await raw.outcome(stream_id) == ("reset", 0x106)
        ok = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest()))
        assert (await raw.outcome(ok))[0] == "data"
    assert (await client.authenticate("")).tenant_id == "local"


