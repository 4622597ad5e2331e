"""Every TeleQuick DTO, field for field in the order of the seed tables and PROTOCOL.md §3.

Field order is the wire order: never reorder, only append (and then bump ``VERSION``).
"""

from __future__ import annotations

from trunkline.enums import DialplanAction, ErrorCode, EventType, InboundRule
from trunkline.wire.envelope import F64, I32, I64, U32, U64, Dto, Vec, dto

__all__ = [
    "Dto",
    "OriginateRequest",
    "OriginateResponse",
    "TerminateRequest",
    "TerminateResponse",
    "AnswerIncomingCallRequest",
    "AnswerIncomingCallResponse",
    "BulkRequest",
    "BulkResponse",
    "AbortBulkRequest",
    "BargeRequest",
    "EventStreamRequest",
    "GetIncomingCallsRequest",
    "GetIncomingCallsResponse",
    "IncomingCallInfo",
    "BucketRequest",
    "BucketInfo",
    "ListBucketsResponse",
    "BucketCallList",
    "BucketActionRequest",
    "BucketActionResponse",
    "SetInboundRoutingRequest",
    "ExecuteDialplanRequest",
    "ExecuteDialplanResponse",
    "Empty",
    "AudioFrame",
    "CallEvent",
    "AuthRequest",
    "AuthResponse",
]


@dto
class OriginateRequest(Dto):
    """Version 1 appends session_id, agent_config_key and traceparent; v0 senders omit them."""

    VERSION = 1
    trunk_id: str
    to: str
    call_from: str
    ai_websocket_url: str
    ai_quic_url: str
    tenant_id: str
    max_duration_ms: I32
    call_sid: str
    default_app: DialplanAction
    default_app_args: str
    auto_barge_in: bool
    barge_in_patience_ms: I32
    client_id: str
    session_id: U32
    agent_config_key: str
    traceparent: str


@dto
class _CallResult(Dto):
    """The shared shape of OriginateResponse, TerminateResponse and AnswerIncomingCallResponse."""

    call_sid: str
    status: str
    error_message: str
    error_code: ErrorCode
    timestamp_ms: I64


@dto
class OriginateResponse(_CallResult):
    pass


@dto
class TerminateResponse(_CallResult):
    pass


@dto
class AnswerIncomingCallResponse(_CallResult):
    pass


@dto
class BulkRequest(Dto):
    csv_url: str
    template_trunk_id: str
    template_to: str
    template_call_from: str
    template_ai_websocket_url: str
    template_ai_quic_url: str
    template_tenant_id: str
    template_max_duration_ms: I32
    template_default_app: DialplanAction
    template_default_app_args: str
    calls_per_second: I32
    max_concurrent_calls: I32
    campaign_id: str


@dto
class BulkResponse(Dto):
    status: str
    loaded_numbers: I32


@dto
class AbortBulkRequest(Dto):
    campaign_id: str


@dto
class TerminateRequest(Dto):
    call_sid: str


@dto
class BargeRequest(Dto):
    call_sid: str


@dto
class EventStreamRequest(Dto):
    client_id: str


@dto
class GetIncomingCallsRequest(Dto):
    trunk_id: str


@dto
class BucketRequest(Dto):
    bucket_id: str


@dto
class SetInboundRoutingRequest(Dto):
    trunk_id: str
    rule: InboundRule
    audio_url: str
    webhook_url: str
    ai_websocket_url: str
    ai_quic_url: str


@dto
class AnswerIncomingCallRequest(Dto):
    call_sid: str
    ai_websocket_url: str
    ai_quic_url: str


@dto
class BucketActionRequest(Dto):
    bucket_id: str
    action: I32


@dto
class ExecuteDialplanRequest(Dto):
    call_sid: str
    action: DialplanAction
    app_args: str


@dto
class IncomingCallInfo(Dto):
    call_sid: str
    call_from: str
    start_timestamp_ms: I64


@dto
class GetIncomingCallsResponse(Dto):
    calls: Vec[IncomingCallInfo]


@dto
class BucketInfo(Dto):
    bucket_id: str
    pending_count: I32


@dto
class ListBucketsResponse(Dto):
    buckets: Vec[BucketInfo]


@dto
class BucketCallList(Dto):
    call_sids: Vec[str]


@dto
class BucketActionResponse(Dto):
    processed_count: I32


@dto
class ExecuteDialplanResponse(Dto):
    status: str
    error_message: str
    error_code: ErrorCode


@dto
class Empty(Dto):
    pass


@dto
class AudioFrame(Dto):
    call_sid: str
    payload: bytes
    codec: str
    sequence_number: U64
    end_of_stream: bool


@dto
class CallEvent(Dto):
    call_sid: str
    event_type: EventType
    status: str
    start_timestamp_ms: I64
    q850_cause: I32
    recording_url: str
    duration_seconds: I32
    answer_timestamp_ms: I64
    end_timestamp_ms: I64
    packets_sent: U32
    packets_received: U32
    packets_lost: U32
    bytes_sent: U64
    jitter_ms: F64
    estimated_mos: F64
    trunk_id: str
    tenant_id: str
    codec: str
    timestamp_ms: I64
    client_id: str


@dto
class AuthRequest(Dto):
    token: str


@dto
class AuthResponse(Dto):
    tenant_id: str
    status: str
    error_message: str
    error_code: ErrorCode
    expires_at_ms: I64
