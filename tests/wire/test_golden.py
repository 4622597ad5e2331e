"""Golden byte vectors, written from the seed tables with one non-default value per field.

Each hex string was spelled field by field (header ``v cv size``; strings as i32 length + UTF-8) and
checked by hand; the codec must produce exactly these bytes and read them back to the same object.
"""

import pytest

from trunkline.enums import DialplanAction, ErrorCode, EventType, InboundRule
from trunkline.wire import (
    AbortBulkRequest,
    AnswerIncomingCallRequest,
    AnswerIncomingCallResponse,
    AudioFrame,
    AuthRequest,
    AuthResponse,
    BargeRequest,
    BucketActionRequest,
    BucketActionResponse,
    BucketCallList,
    BucketInfo,
    BucketRequest,
    BulkRequest,
    BulkResponse,
    CallEvent,
    Empty,
    EventStreamRequest,
    ExecuteDialplanRequest,
    ExecuteDialplanResponse,
    GetIncomingCallsRequest,
    GetIncomingCallsResponse,
    IncomingCallInfo,
    ListBucketsResponse,
    OriginateRequest,
    OriginateResponse,
    SetInboundRoutingRequest,
    TerminateRequest,
    TerminateResponse,
)

ORIGINATE_V1 = OriginateRequest(
    trunk_id="t1", to="+15551234567", call_from="+1999", ai_websocket_url="ws://a", ai_quic_url="q",
    tenant_id="acme", max_duration_ms=30000, call_sid="c1", default_app=DialplanAction.PARK,
    default_app_args="b", auto_barge_in=True, barge_in_patience_ms=250, client_id="cid",
    session_id=7, agent_config_key="k", traceparent="tp",
)

GOLDEN = [
    (ORIGINATE_V1,
     "01 00 64000000"  # v1 cv0, 100 bytes
     "02000000 7431 0c000000 2b3135353531323334353637 05000000 2b31393939 06000000 77733a2f2f61"
     "01000000 71 04000000 61636d65 30750000 02000000 6331 01000000 01000000 62 01 fa000000"
     "03000000 636964 07000000 01000000 6b 02000000 7470"),
    (OriginateResponse(call_sid="c1", status="QUEUED", timestamp_ms=1700000000000),
     "0000 20000000 02000000 6331 06000000 515545554544 00000000 00000000 0068e5cf8b010000"),
    (TerminateResponse(call_sid="c1", status="x", error_message="no such call",
                       error_code=ErrorCode.ERR_VALIDATION_FAILED, timestamp_ms=5),
     "0000 27000000 02000000 6331 01000000 78 0c000000 6e6f20737563682063616c6c 06000000 0500000000000000"),
    (AnswerIncomingCallResponse(call_sid="c9", status="ANSWERED", timestamp_ms=-1),
     "0000 22000000 02000000 6339 08000000 414e535745524544 00000000 00000000 ffffffffffffffff"),
    (BulkRequest(csv_url="https://x/a.csv", template_trunk_id="t1", template_call_from="+1",
                 template_ai_websocket_url="ws", template_tenant_id="acme",
                 template_max_duration_ms=60000,
                 template_default_app=DialplanAction.AI_BIDIRECTIONAL_STREAM,
                 template_default_app_args="agent", calls_per_second=5, max_concurrent_calls=20,
                 campaign_id="camp"),
     "0000 56000000 0f000000 68747470733a2f2f782f612e637376 02000000 7431 00000000 02000000 2b31"
     "02000000 7773 00000000 04000000 61636d65 60ea0000 06000000 05000000 6167656e74 05000000"
     "14000000 04000000 63616d70"),
    (BulkResponse(status="ERR_RATE_LIMITED"),
     "0000 18000000 10000000 4552525f524154455f4c494d49544544 00000000"),
    (AbortBulkRequest(campaign_id="camp"), "0000 08000000 04000000 63616d70"),
    (TerminateRequest(call_sid="c1"), "0000 06000000 02000000 6331"),
    (BargeRequest(call_sid="c2"), "0000 06000000 02000000 6332"),
    (EventStreamRequest(client_id="abc"), "0000 07000000 03000000 616263"),
    (GetIncomingCallsRequest(trunk_id="t1"), "0000 06000000 02000000 7431"),
    (BucketRequest(bucket_id="vip"), "0000 07000000 03000000 766970"),
    (SetInboundRoutingRequest(trunk_id="t1", rule=InboundRule.NOTIFY_AND_HANGUP, audio_url="a",
                              webhook_url="https://h", ai_quic_url="q"),
     "0000 25000000 02000000 7431 02000000 01000000 61 09000000 68747470733a2f2f68 00000000"
     "01000000 71"),
    (AnswerIncomingCallRequest(call_sid="c3", ai_websocket_url="ws://b"),
     "0000 14000000 02000000 6333 06000000 77733a2f2f62 00000000"),
    (BucketActionRequest(bucket_id="vip", action=2), "0000 0b000000 03000000 766970 02000000"),
    (ExecuteDialplanRequest(call_sid="c1", action=DialplanAction.SEND_DTMF, app_args="5:rfc2833:100"),
     "0000 1b000000 02000000 6331 0c000000 0d000000 353a726663323833333a313030"),
    (IncomingCallInfo(call_sid="c4", call_from="+1555", start_timestamp_ms=42),
     "0000 17000000 02000000 6334 05000000 2b31353535 2a00000000000000"),
    (GetIncomingCallsResponse(calls=[IncomingCallInfo("c4", "+1555", 42), IncomingCallInfo("c5", "", 0)]),
     "0000 39000000 02000000"
     "0000 17000000 02000000 6334 05000000 2b31353535 2a00000000000000"
     "0000 12000000 02000000 6335 00000000 0000000000000000"),
    (BucketInfo(bucket_id="default", pending_count=3), "0000 0f000000 07000000 64656661756c74 03000000"),
    (ListBucketsResponse(buckets=[BucketInfo("default", 3)]),
     "0000 19000000 01000000 0000 0f000000 07000000 64656661756c74 03000000"),
    (BucketCallList(call_sids=["a", "bc"]), "0000 0f000000 02000000 01000000 61 02000000 6263"),
    (BucketActionResponse(processed_count=4), "0000 04000000 04000000"),
    (ExecuteDialplanResponse(status="OK"), "0000 0e000000 02000000 4f4b 00000000 00000000"),
    (Empty(), "0000 00000000"),
    (AudioFrame(call_sid="c1", payload=b"\x00\xff", codec="PCMU", sequence_number=2**40 + 1,
                end_of_stream=True),
     "0000 1d000000 02000000 6331 02000000 00ff 04000000 50434d55 0100000000010000 01"),
    (CallEvent(call_sid="c1", event_type=EventType.CHANNEL_HANGUP_COMPLETE, status="COMPLETED",
               start_timestamp_ms=1000, q850_cause=16, duration_seconds=12, answer_timestamp_ms=2000,
               end_timestamp_ms=14000, packets_sent=600, packets_received=599, packets_lost=1,
               bytes_sent=96000, jitter_ms=1.5, estimated_mos=4.25, trunk_id="t1", tenant_id="acme",
               codec="PCMU", timestamp_ms=14001, client_id="cid"),
     "0000 84000000 02000000 6331 03000000 09000000 434f4d504c45544544 e803000000000000 10000000"
     "00000000 0c000000 d007000000000000 b036000000000000 58020000 57020000 01000000"
     "0077010000000000 000000000000f83f 0000000000001140 02000000 7431 04000000 61636d65"
     "04000000 50434d55 b136000000000000 03000000 636964"),
    (AuthRequest(token="jwt"), "0000 07000000 03000000 6a7774"),
    (AuthResponse(tenant_id="acme", status="OK", expires_at_ms=1700000003600),
     "0000 1e000000 04000000 61636d65 02000000 4f4b 00000000 00000000 1076e5cf8b010000"),
]


@pytest.mark.parametrize("message,hexbytes", GOLDEN, ids=[type(m).__name__ for m, _ in GOLDEN])
def test_golden_vector(message, hexbytes):
    expected = bytes.fromhex(hexbytes.replace(" ", ""))
    assert message.to_bytes() == expected
    assert type(message).from_bytes(expected) == message


def test_every_dto_has_a_golden_vector():
    import trunkline.wire.dtos as dtos

    covered = {type(m).__name__ for m, _ in GOLDEN}
    assert covered == set(dtos.__all__) - {"Dto"}


def test_version_0_originate_is_accepted_with_v1_fields_zeroed():
    v0 = bytes.fromhex(
        "0000 55000000"  # v0 cv0, 85 bytes: the 13 fields of the seed table
        "02000000 7431 0c000000 2b3135353531323334353637 05000000 2b31393939 06000000 77733a2f2f61"
        "01000000 71 04000000 61636d65 30750000 02000000 6331 01000000 01000000 62 01 fa000000"
        "03000000 636964".replace(" ", "")
    )
    decoded = OriginateRequest.from_bytes(v0)
    expected = OriginateRequest(**{**_fields(ORIGINATE_V1), "session_id": 0, "agent_config_key": "", "traceparent": ""})
    assert decoded == expected


def _fields(obj):
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
