"""Request frames in, response frames or stream resets out: the RPC's pure core.

The transport hands over the bytes of one bidi request; the dispatcher returns what to do with the
stream. Handlers run synchronously when they can (most do), so the common path costs no task; a
handler that returns an awaitable is awaited by the caller of :meth:`Dispatcher.finish`.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from trunkline.calls.errors import CallError
from trunkline.enums import ErrorCode
from trunkline.rpc.errors import RpcFailure, reset_code
from trunkline.rpc.session import Session
from trunkline.wire import METHODS, FrameError, Method, WireError, encode_frame, parse_request_frame
from trunkline.wire.dtos import BulkResponse, Dto

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    frame: bytes


@dataclass(frozen=True, slots=True)
class Reset:
    error_code: int
    reason: str


Outcome = Reply | Reset
Handler = Callable[[Session, Any], "Dto | Awaitable[Dto]"]
_UNKNOWN_METHOD = Reset(reset_code(ErrorCode.ERR_VALIDATION_FAILED), "unknown method")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Dispatcher:
    def __init__(self, handlers: object, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._routes: dict[int, tuple[Method, Handler]] = {}
        for method in METHODS:
            if method.response is not None:  # AudioFrame travels on uni streams only
                self._routes[method.method_id] = (method, getattr(handlers, _snake(method.name)))

    def dispatch(self, session: Session, data: bytes | bytearray) -> "Outcome | Awaitable[Outcome]":
        try:
            method_id, envelope = parse_request_frame(data)
        except FrameError as exc:
            return Reset(reset_code(ErrorCode.ERR_VALIDATION_FAILED), str(exc))
        route = self._routes.get(method_id)
        if route is None:
            return _UNKNOWN_METHOD
        method, handler = route
        if method.name != "Authenticate" and not session.authorized(self.clock()):
            why = "token expired: authenticate again" if session.tenant_id else "authenticate first"
            return self.failure(method, ErrorCode.ERR_UNAUTHORIZED, why)
        try:
            request = method.request.from_bytes(envelope)
        except WireError as exc:
            return self.failure(method, ErrorCode.ERR_VALIDATION_FAILED, str(exc))
        try:
            result = handler(session, request)
        except Exception as exc:  # noqa: BLE001 - a handler bug must cost one request, not the connection
            return self._error(method, request, exc)
        if inspect.isawaitable(result):
            return self._finish(method, request, result)
        return Reply(encode_frame(method.method_id, result))

    async def _finish(self, method: Method, request: Dto, pending: Awaitable[Dto]) -> Outcome:
        try:
            response = await pending
        except Exception as exc:  # noqa: BLE001
            return self._error(method, request, exc)
        return Reply(encode_frame(method.method_id, response))

    def _error(self, method: Method, request: Dto, exc: Exception) -> Outcome:
        if isinstance(exc, (RpcFailure, CallError)):
            return self.failure(method, exc.code, exc.message, getattr(request, "call_sid", ""))
        if isinstance(exc, WireError):  # a handler built a response that cannot be encoded
            log.error("%s: unencodable response: %s", method.name, exc)
        else:
            log.exception("%s handler failed", method.name)
        return self.failure(method, ErrorCode.ERR_INTERNAL_ERROR, f"internal error in {method.name}: {type(exc).__name__}")

    def failure(self, method: Method, code: ErrorCode, message: str, call_sid: str = "") -> Outcome:
        """The §4 error mapping: error fields where the response has them, BulkResponse's status
        string, else a stream reset with ``0x100 + code``."""
        response_type = method.response
        if method.has_error_field:
            fields = response_type.__dataclass_fields__
            values: dict[str, Any] = {"error_code": code, "error_message": message, "status": code.name}
            if "call_sid" in fields:
                values["call_sid"] = call_sid
            if "timestamp_ms" in fields:
                values["timestamp_ms"] = int(self.clock() * 1000)
            return Reply(encode_frame(method.method_id, response_type(**values)))
        if response_type is BulkResponse:
            return Reply(encode_frame(method.method_id, BulkResponse(status=code.name, loaded_numbers=0)))
        return Reset(reset_code(code), message)
