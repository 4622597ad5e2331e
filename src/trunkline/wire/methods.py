"""The method table of PROTOCOL.md §4: ids, names and the DTOs each method reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.wire import dtos as d


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    method_id: int
    request: type[d.Dto]
    response: type[d.Dto] | None  # None: a stream-only method (AudioFrame) with no answer

    @property
    def has_error_field(self) -> bool:
        """Responses without ``error_code`` report failure by resetting the stream (§4)."""
        return self.response is not None and "error_code" in self.response.__dataclass_fields__


METHODS: tuple[Method, ...] = (
    Method("Originate", 1430677891, d.OriginateRequest, d.OriginateResponse),
    Method("OriginateBulk", 721069100, d.BulkRequest, d.BulkResponse),
    Method("AbortBulk", 3861915064, d.AbortBulkRequest, d.BulkResponse),
    Method("Terminate", 3834253405, d.TerminateRequest, d.TerminateResponse),
    Method("StreamEvents", 959835745, d.EventStreamRequest, d.Empty),
    Method("SetInboundRouting", 1933986897, d.SetInboundRoutingRequest, d.Empty),
    Method("GetIncomingCalls", 1161946746, d.GetIncomingCallsRequest, d.GetIncomingCallsResponse),
    Method("AnswerIncomingCall", 2990157256, d.AnswerIncomingCallRequest, d.AnswerIncomingCallResponse),
    Method("GetActiveBuckets", 2624504207, d.Empty, d.ListBucketsResponse),
    Method("GetBucketCalls", 1217351135, d.BucketRequest, d.BucketCallList),
    Method("ExecuteBucketAction", 4030863293, d.BucketActionRequest, d.BucketActionResponse),
    Method("ExecuteDialplan", 80147304, d.ExecuteDialplanRequest, d.ExecuteDialplanResponse),
    Method("Barge", 3854301714, d.BargeRequest, d.Empty),
    Method("AudioFrame", 2991054320, d.AudioFrame, None),
    Method("Authenticate", 1096111176, d.AuthRequest, d.AuthResponse),
)

METHODS_BY_ID: dict[int, Method] = {m.method_id: m for m in METHODS}
METHODS_BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}

#: CallEvents pushed on the gateway's event uni stream carry StreamEvents' id.
CALL_EVENT_METHOD_ID = METHODS_BY_NAME["StreamEvents"].method_id
AUDIO_FRAME_METHOD_ID = METHODS_BY_NAME["AudioFrame"].method_id
