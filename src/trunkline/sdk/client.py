"""``Client``: one coroutine per TeleQuick RPC, returning typed responses and raising typed errors.

The sugar methods (``dial``, ``transfer``, ``send_dtmf``...) carry the names of the public TeleQuick
Python SDK, so code written against it ports by changing the import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from trunkline.auth.service_account import ServiceAccount
from trunkline.enums import DialplanAction, ErrorCode, InboundRule
from trunkline.sdk.connection import CLOSED, ClientProtocol, client_configuration, open_connection
from trunkline.sdk.errors import CertificateRefused, ConnectionLost, TrunklineError, error_for
from trunkline.wire import dtos as d
from trunkline.wire.methods import METHODS_BY_NAME

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "127.0.0.1:9090"
#: Refresh the token this long before it expires, so no request races the expiry.
TOKEN_REFRESH_MARGIN_S = 300
RECONNECT_DELAYS_S = (0.2, 0.5, 1, 2, 5)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    text = endpoint.removeprefix("quic://")
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 9090
    return host.strip("[]"), int(port)


class Client:
    """A connection to one Trunkline gateway, for one tenant.

    Use ``async with Client.connect("127.0.0.1:9090") as client:``. ``credentials`` is a
    service-account JSON path or a :class:`ServiceAccount`; by default ``TRUNKLINE_CREDENTIALS`` is
    read, and with neither the gateway must run in open mode. The connection PINGs the gateway while
    open, so ``idle_timeout`` only ends it when the gateway stops answering.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        credentials: str | Path | ServiceAccount | None = None,
        client_id: str | None = None,
        ca_file: str | Path | None = None,
        insecure: bool = False,
        server_name: str | None = None,
        timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint
        self.host, self.port = parse_endpoint(endpoint)
        if credentials is None and os.environ.get("TRUNKLINE_CREDENTIALS"):
            credentials = os.environ["TRUNKLINE_CREDENTIALS"]
        if credentials is not None and not isinstance(credentials, ServiceAccount):
            credentials = ServiceAccount.load(credentials)
        self.credentials: ServiceAccount | None = credentials
        self.client_id = client_id or str(uuid.uuid4())
        self.timeout = timeout
        self.tenant_id: str | None = None
        self._configuration_args = (server_name or self.host, str(ca_file) if ca_file else None, insecure, idle_timeout)
        self._stack: contextlib.AsyncExitStack | None = None
        self._protocol: ClientProtocol | None = None
        self._refresher: asyncio.Task | None = None
        self._connect_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def connect(cls, endpoint: str = DEFAULT_ENDPOINT, **kwargs: Any) -> "Client":
        """Returns the client unconnected; ``async with`` (or ``await client.open()``) connects."""
        return cls(endpoint, **kwargs)

    async def __aenter__(self) -> "Client":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        await self._connection()

    async def close(self) -> None:
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
        await self._drop_connection()

    # --- connection management ---------------------------------------------------------------

    async def _connection(self) -> ClientProtocol:
        protocol = self._protocol
        if protocol is not None and not protocol.terminated:
            return protocol
        async with self._connect_lock:
            if self._protocol is not None and not self._protocol.terminated:
                return self._protocol
            if self._closed:
                raise ConnectionLost("client is closed")
            await self._drop_connection()
            stack = contextlib.AsyncExitStack()
            try:
                protocol = await asyncio.wait_for(stack.enter_async_context(
                    open_connection(self.host, self.port, client_configuration(*self._configuration_args))
                ), self.timeout)
            except (ConnectionError, asyncio.TimeoutError, CertificateRefused) as exc:
                await stack.aclose()
                why = str(exc) or f"no QUIC handshake within {self.timeout:g} s"
                lost = CertificateRefused if isinstance(exc, CertificateRefused) else ConnectionLost
                raise lost(f"cannot reach {self.endpoint}: {why}") from None
            self._stack, self._protocol = stack, protocol
            if self.credentials is not None:
                await self._authenticate(protocol)
            return protocol

    async def _drop_connection(self) -> None:
        stack, self._stack, self._protocol = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def _authenticate(self, protocol: ClientProtocol) -> d.AuthResponse:
        assert self.credentials is not None
        token = self.credentials.sign_token(time.time())
        response = await protocol.request(METHODS_BY_NAME["Authenticate"], d.AuthRequest(token=token), self.timeout)
        _raise_for(response, "Authenticate")
        self.tenant_id = response.tenant_id
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_token(response.expires_at_ms / 1000))
        return response

    async def _refresh_token(self, expires_at: float) -> None:
        while not self._closed:
            await asyncio.sleep(max(1.0, expires_at - time.time() - TOKEN_REFRESH_MARGIN_S))
            protocol = self._protocol
            if protocol is None or protocol.terminated:
                return  # the next connection authenticates afresh
            try:
                response = await protocol.request(
                    METHODS_BY_NAME["Authenticate"],
                    d.AuthRequest(token=self.credentials.sign_token(time.time())), self.timeout,
                )
                _raise_for(response, "Authenticate")
                expires_at = response.expires_at_ms / 1000
            except TrunklineError as exc:
                log.warning("token refresh failed: %s", exc)
                expires_at = time.time() + TOKEN_REFRESH_MARGIN_S / 2

    async def call(self, method_name: str, request: d.Dto) -> Any:
        """Send one request and return its typed response; refused requests raise TrunklineError."""
        method = METHODS_BY_NAME[method_name]
        protocol = await self._connection()
        response = await protocol.request(method, request, self.timeout)
        _raise_for(response, method_name)
        return response

    # --- the RPCs ----------------------------------------------------------------------------

    async def authenticate(self, token: str) -> d.AuthResponse:
        response = await self.call("Authenticate", d.AuthRequest(token=token))
        self.tenant_id = response.tenant_id
        return response

    async def originate(self, request: d.OriginateRequest) -> d.OriginateResponse:
        if not request.client_id:
            request.client_id = self.client_id
        return await self.call("Originate", request)

    async def originate_bulk(self, request: d.BulkRequest | None = None, **fields: Any) -> d.BulkResponse:
        return await self.call("OriginateBulk", request or d.BulkRequest(**fields))

    async def abort_bulk(self, campaign_id: str) -> d.BulkResponse:
        return await self.call("AbortBulk", d.AbortBulkRequest(campaign_id=campaign_id))

    async def terminate(self, call_sid: str) -> d.TerminateResponse:
        return await self.call("Terminate", d.TerminateRequest(call_sid=call_sid))

    async def barge(self, call_sid: str) -> None:
        await self.call("Barge", d.BargeRequest(call_sid=call_sid))

    async def set_inbound_routing(
        self, trunk_id: str, rule: InboundRule, *, audio_url: str = "", webhook_url: str = "",
        ai_websocket_url: str = "", ai_quic_url: str = "",
    ) -> None:
        await self.call("SetInboundRouting", d.SetInboundRoutingRequest(
            trunk_id=trunk_id, rule=rule, audio_url=audio_url, webhook_url=webhook_url,
            ai_websocket_url=ai_websocket_url, ai_quic_url=ai_quic_url))

    async def get_incoming_calls(self, trunk_id: str = "") -> list[d.IncomingCallInfo]:
        return (await self.call("GetIncomingCalls", d.GetIncomingCallsRequest(trunk_id=trunk_id))).calls

    async def answer_incoming_call(
        self, call_sid: str, *, ai_websocket_url: str = "", ai_quic_url: str = "",
    ) -> d.AnswerIncomingCallResponse:
        return await self.call("AnswerIncomingCall", d.AnswerIncomingCallRequest(
            call_sid=call_sid, ai_websocket_url=ai_websocket_url, ai_quic_url=ai_quic_url))

    async def get_active_buckets(self) -> list[d.BucketInfo]:
        return (await self.call("GetActiveBuckets", d.Empty())).buckets

    async def get_bucket_calls(self, bucket_id: str) -> list[str]:
        return (await self.call("GetBucketCalls", d.BucketRequest(bucket_id=bucket_id))).call_sids

    async def execute_bucket_action(self, bucket_id: str, action: int) -> int:
        request = d.BucketActionRequest(bucket_id=bucket_id, action=action)
        return (await self.call("ExecuteBucketAction", request)).processed_count

    async def execute_dialplan(self, call_sid: str, action: DialplanAction, app_args: str = "") -> d.ExecuteDialplanResponse:
        return await self.call("ExecuteDialplan", d.ExecuteDialplanRequest(call_sid=call_sid, action=action, app_args=app_args))

    # --- sugar with the public SDK's names ---------------------------------------------------

    async def dial(
        self, to: str, *, trunk_id: str, call_from: str = "", default_app: DialplanAction = DialplanAction.PARK,
        default_app_args: str = "", ai_websocket_url: str = "", ai_quic_url: str = "", max_duration_ms: int = 0,
        call_sid: str = "", auto_barge_in: bool = False, barge_in_patience_ms: int = 0, tenant_id: str = "",
        traceparent: str = "", agent_config_key: str = "",
    ) -> d.OriginateResponse:
        """Place a call. Unlike the raw RPC (where 0 = HANGUP), the SDK defaults to PARK (§6).
        ``agent_config_key`` names an ``[[agents]]`` entry of the gateway's config for the AI stream."""
        return await self.originate(d.OriginateRequest(
            trunk_id=trunk_id, to=to, call_from=call_from, ai_websocket_url=ai_websocket_url,
            ai_quic_url=ai_quic_url, tenant_id=tenant_id, max_duration_ms=max_duration_ms, call_sid=call_sid,
            default_app=default_app, default_app_args=default_app_args, auto_barge_in=auto_barge_in,
            barge_in_patience_ms=barge_in_patience_ms, client_id=self.client_id, traceparent=traceparent,
            agent_config_key=agent_config_key))

    async def transfer(self, call_sid: str, to: str) -> d.ExecuteDialplanResponse:
        return await self.execute_dialplan(call_sid, DialplanAction.TRANSFER, to)

    async def mute(self, call_sid: str, wire: bool = False) -> d.ExecuteDialplanResponse:
        return await self.execute_dialplan(call_sid, DialplanAction.MUTE, "wire" if wire else "")

    async def unmute(self, call_sid: str, wire: bool = False) -> d.ExecuteDialplanResponse:
        return await self.execute_dialplan(call_sid, DialplanAction.UNMUTE, "wire" if wire else "")

    async def hold(self, call_sid: str) -> d.ExecuteDialplanResponse:
        return await self.execute_dialplan(call_sid, DialplanAction.HOLD)

    async def unhold(self, call_sid: str) -> d.ExecuteDialplanResponse:
        return await self.execute_dialplan(call_sid, DialplanAction.UNHOLD)

    async def send_dtmf(self, call_sid: str, digits: str, mode: str = "rfc2833", duration_ms: int = 100) -> list[d.ExecuteDialplanResponse]:
        """One SEND_DTMF per digit, in order (the verb carries one digit)."""
        return [await self.execute_dialplan(call_sid, DialplanAction.SEND_DTMF, f"{digit}:{mode}:{duration_ms}")
                for digit in digits]

    # --- streams -----------------------------------------------------------------------------

    async def events(self, client_id: str | None = None, reconnect: bool = True) -> AsyncIterator[d.CallEvent]:
        """CallEvents for ``client_id`` (default: this client's) and the tenant's unrouted calls.

        If the connection drops, it reconnects and subscribes again; the gateway replays what it kept
        for this client_id meanwhile (PROTOCOL.md §6), so no event is lost across a short outage.
        """
        client_id = self.client_id if client_id is None else client_id
        attempt = 0
        lost: str | None = None  # why the last subscription ended, until a new one stands
        while True:
            queue: asyncio.Queue = asyncio.Queue()
            try:
                protocol = await self._connection()
                protocol.event_listeners.add(queue)
                try:
                    await protocol.request(METHODS_BY_NAME["StreamEvents"], d.EventStreamRequest(client_id=client_id), self.timeout)
                    if lost is not None:
                        log.info("event stream lost (%s); resubscribed after %d attempt(s)", lost, attempt)
                        lost = None
                    attempt = 0
                    while (item := await queue.get()) is not CLOSED:
                        yield item
                finally:
                    protocol.event_listeners.discard(queue)
                reason = protocol.terminated or "event stream ended"
            except ConnectionLost as exc:
                if not reconnect or self._closed:
                    raise
                reason = str(exc)
            if self._closed:
                return
            if not reconnect:
                raise ConnectionLost("event stream ended")
            lost = lost or reason
            delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
            attempt += 1
            log.debug("event stream down (%s); attempt %d in %.1f s", reason, attempt, delay)
            await asyncio.sleep(delay)

    stream_events = events

    async def send_audio(self, call_sid: str, payload: bytes, codec: str = "PCMU", end_of_stream: bool = False) -> None:
        """One 20 ms frame into the call; the gateway paces playout, so frames may be sent ahead."""
        (await self._connection()).send_audio(call_sid, payload, codec, end_of_stream)

    async def audio(self, call_sid: str) -> AsyncIterator[d.AudioFrame]:
        """The call's audio as it reaches this client, until ``end_of_stream`` or the connection ends."""
        protocol = await self._connection()
        queue: asyncio.Queue = asyncio.Queue()
        for frame in protocol.audio_backlog.pop(call_sid, ()):
            queue.put_nowait(frame)
        protocol.audio_listeners.setdefault(call_sid, set()).add(queue)
        try:
            while (frame := await queue.get()) is not CLOSED:
                yield frame
                if frame.end_of_stream:
                    return
        finally:
            listeners = protocol.audio_listeners.get(call_sid)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del protocol.audio_listeners[call_sid]


def _raise_for(response: d.Dto, method: str) -> None:
    code = getattr(response, "error_code", ErrorCode.SUCCESS)
    if code != ErrorCode.SUCCESS:
        raise error_for(code, getattr(response, "error_message", ""), method)
    status = getattr(response, "status", "")
    if isinstance(response, d.BulkResponse) and status.startswith("ERR_") and status in ErrorCode.__members__:
        raise error_for(ErrorCode[status], "", method)
