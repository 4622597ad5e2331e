"""One method per TeleQuick RPC, translating DTOs to domain calls and back.

Methods whose engine arrives with a later part of the gateway raise :class:`NotAvailable`, which the
dispatcher turns into a correctly framed ``ERR_INTERNAL_ERROR`` ("not available yet: <Method>").
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from trunkline.auth.tokens import TokenRejected, TokenVerifier
from trunkline.calls.call import Call, CallState
from trunkline.calls.events import CallEvent, EventHub
from trunkline.calls.inbound import InboundRouting, InboundRoutes
from trunkline.calls.service import CallService
from trunkline.enums import ErrorCode
from trunkline.rpc.errors import NotAvailable, RpcFailure
from trunkline.rpc.session import Session
from trunkline.wire import dtos as d

log = logging.getLogger(__name__)

CLIENT_ID_MAX = 256


class ClientAudioSink(Protocol):
    def deliver(self, tenant_id: str, call_sid: str, payload: bytes, codec: str, end_of_stream: bool) -> bool: ...


class RpcHandlers:
    def __init__(
        self,
        events: EventHub,
        default_tenant: str,
        verifier: TokenVerifier | None,
        calls: CallService,
        client_audio: ClientAudioSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_audio = client_audio
        self.events = events
        self.calls = calls
        self.default_tenant = default_tenant
        self.verifier = verifier  # None: open mode
        self.clock = clock
        self.audio_frames_dropped = 0
        self.inbound: InboundRoutes | None = None  # the gateway sets it once its store is open

    def open_session(self, session: Session) -> None:
        """Open mode: every connection acts for the default tenant from its first byte (§5)."""
        if self.verifier is None:
            session.tenant_id = self.default_tenant

    def close_session(self, session: Session) -> None:
        self.events.unsubscribe(session.outlet)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _check_tenant(self, session: Session, tenant_id: str) -> None:
        """§5: a request may name its tenant. With a token, only the connection's own; in open mode
        there is nothing to match it with, so it is logged and the request acts for the default
        tenant (the public SDKs send a fixed ``test_tenant``)."""
        if not tenant_id or tenant_id == session.tenant_id:
            return
        if self.verifier is None:
            log.debug("%s: request names tenant %r; open mode acts for %r", session.peer, tenant_id, session.tenant_id)
            return
        raise RpcFailure(ErrorCode.ERR_UNAUTHORIZED, f"tenant {tenant_id!r} is not this connection's tenant")

    # --- implemented here --------------------------------------------------------------------

    def authenticate(self, session: Session, req: d.AuthRequest) -> d.AuthResponse:
        if self.verifier is None:
            return d.AuthResponse(tenant_id=self.default_tenant, status="OK")
        try:
            token = self.verifier.verify(req.token, self.clock())
        except TokenRejected as exc:
            log.info("%s: token rejected: %s", session.peer, exc.reason)
            return d.AuthResponse(status="ERR_UNAUTHORIZED", error_message=exc.reason,
                                  error_code=ErrorCode.ERR_UNAUTHORIZED)
        if session.tenant_id not in (None, token.tenant_id):
            return d.AuthResponse(status="ERR_UNAUTHORIZED", error_code=ErrorCode.ERR_UNAUTHORIZED,
                                  error_message=f"connection already acts for tenant {session.tenant_id!r}")
        session.tenant_id = token.tenant_id
        session.expires_at = token.expires_at
        session.outlet.expire_at(token.expires_at)
        return d.AuthResponse(tenant_id=token.tenant_id, status="OK", expires_at_ms=int(token.expires_at * 1000))

    def stream_events(self, session: Session, req: d.EventStreamRequest) -> d.Empty:
        if len(req.client_id) > CLIENT_ID_MAX:
            raise RpcFailure(ErrorCode.ERR_VALIDATION_FAILED, f"client_id longer than {CLIENT_ID_MAX} characters")
        self.events.subscribe(session.tenant_id, req.client_id, session.outlet)
        session.outlet.keep_alive()  # a subscriber may wait longer than the idle timeout for its next event
        return d.Empty()

    def audio_frame(self, session: Session, frame: d.AudioFrame) -> None:
        """Client -> call audio from a uni stream, for a call streaming to its SDK client (§6 Audio);
        frames for any other call_sid are counted and dropped."""
        sink = self.client_audio
        if sink is None or not sink.deliver(session.tenant_id, frame.call_sid, frame.payload, frame.codec, frame.end_of_stream):
            self.audio_frames_dropped += 1

    # --- engines that arrive later -----------------------------------------------------------

    def originate(self, session: Session, req: d.OriginateRequest) -> d.OriginateResponse:
        self._check_tenant(session, req.tenant_id)
        call = self.calls.originate(
            session.tenant_id, req.trunk_id, req.call_sid, to=req.to, call_from=req.call_from,
            default_app=req.default_app, default_app_args=req.default_app_args,
            max_duration_ms=req.max_duration_ms, client_id=req.client_id,
            ai_websocket_url=req.ai_websocket_url, ai_quic_url=req.ai_quic_url,
            auto_barge_in=req.auto_barge_in, barge_in_patience_ms=req.barge_in_patience_ms,
            agent_config_key=req.agent_config_key, traceparent=req.traceparent,
        )
        return d.OriginateResponse(call_sid=call.sid, status=_queued_status(call), timestamp_ms=self._now_ms())

    def originate_bulk(self, session: Session, req: d.BulkRequest) -> d.BulkResponse:
        self._check_tenant(session, req.template_tenant_id)
        raise NotAvailable("OriginateBulk")

    def abort_bulk(self, session: Session, req: d.AbortBulkRequest) -> d.BulkResponse:
        raise NotAvailable("AbortBulk")

    def terminate(self, session: Session, req: d.TerminateRequest) -> d.TerminateResponse:
        call = self.calls.terminate(session.tenant_id, req.call_sid)
        return d.TerminateResponse(call_sid=call.sid, status=call.status, timestamp_ms=self._now_ms())

    async def set_inbound_routing(self, session: Session, req: d.SetInboundRoutingRequest) -> d.Empty:
        """Answered once the routing is stored: an acknowledged routing survives a crash (§6)."""
        if self.inbound is None:
            raise NotAvailable("SetInboundRouting")
        await self.inbound.set(InboundRouting(session.tenant_id, req.trunk_id, req.rule, audio_url=req.audio_url,
                                              webhook_url=req.webhook_url, ai_websocket_url=req.ai_websocket_url,
                                              ai_quic_url=req.ai_quic_url))
        return d.Empty()

    def get_incoming_calls(self, session: Session, req: d.GetIncomingCallsRequest) -> d.GetIncomingCallsResponse:
        raise NotAvailable("GetIncomingCalls")

    def answer_incoming_call(self, session: Session, req: d.AnswerIncomingCallRequest) -> d.AnswerIncomingCallResponse:
        raise NotAvailable("AnswerIncomingCall")

    def get_active_buckets(self, session: Session, req: d.Empty) -> d.ListBucketsResponse:
        buckets = self.calls.buckets(session.tenant_id)
        return d.ListBucketsResponse(buckets=[d.BucketInfo(bucket_id=b, pending_count=n) for b, n in buckets])

    def get_bucket_calls(self, session: Session, req: d.BucketRequest) -> d.BucketCallList:
        return d.BucketCallList(call_sids=self.calls.bucket_calls(session.tenant_id, req.bucket_id))

    def execute_bucket_action(self, session: Session, req: d.BucketActionRequest) -> d.BucketActionResponse:
        count = self.calls.bucket_action(session.tenant_id, req.bucket_id, req.action)
        return d.BucketActionResponse(processed_count=count)

    def execute_dialplan(self, session: Session, req: d.ExecuteDialplanRequest) -> d.ExecuteDialplanResponse:
        call = self.calls.execute_dialplan(session.tenant_id, req.call_sid, req.action, req.app_args)
        return d.ExecuteDialplanResponse(status=call.status)

    def barge(self, session: Session, req: d.BargeRequest) -> d.Empty:
        raise NotAvailable("Barge")


def _queued_status(call: Call) -> str:
    """A new call is QUEUED; an idempotent repeat reports the call's current state (§6)."""
    return "QUEUED" if call.state is CallState.INITIATED else call.status


def event_to_dto(event: CallEvent) -> d.CallEvent:
    return d.CallEvent(**{name: getattr(event, name) for name in d.CallEvent.__dataclass_fields__})
