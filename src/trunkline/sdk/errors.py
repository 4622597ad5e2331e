"""Typed errors: one class per ErrorCode, so callers can ``except RateLimited`` and back off."""

from __future__ import annotations

from trunkline.enums import ErrorCode


class TrunklineError(Exception):
    """A request the gateway refused; ``code`` is the TeleQuick ErrorCode."""

    code: ErrorCode = ErrorCode.ERR_INTERNAL_ERROR

    def __init__(self, message: str, method: str = "", code: ErrorCode | None = None) -> None:
        super().__init__(f"{method}: {message}" if method else message)
        self.message = message
        self.method = method
        if code is not None:
            self.code = code


class InvalidTrunk(TrunklineError):
    code = ErrorCode.ERR_INVALID_TRUNK


class InvalidDestination(TrunklineError):
    code = ErrorCode.ERR_INVALID_DESTINATION


class RateLimited(TrunklineError):
    code = ErrorCode.ERR_RATE_LIMITED


class CircuitBreakerOpen(TrunklineError):
    code = ErrorCode.ERR_CIRCUIT_BREAKER


class InternalError(TrunklineError):
    code = ErrorCode.ERR_INTERNAL_ERROR


class ValidationFailed(TrunklineError):
    code = ErrorCode.ERR_VALIDATION_FAILED


class Unauthorized(TrunklineError):
    code = ErrorCode.ERR_UNAUTHORIZED


class ConnectionLost(TrunklineError):
    """The QUIC connection ended before the answer arrived; the request may or may not have run."""


class CertificateRefused(ConnectionLost):
    """The gateway's TLS certificate did not verify against the trusted CAs (or not for the server
    name): trust the gateway's certificate or local CA (``ca_file``), or name the server it is for."""


_BY_CODE = {cls.code: cls for cls in (InvalidTrunk, InvalidDestination, RateLimited, CircuitBreakerOpen,
                                       InternalError, ValidationFailed, Unauthorized)}


#: Said of an internal error whose answer has no room for a reason (a stream reset, BulkResponse's
#: status): a gateway answers a method it does not offer yet that way, and its log names the cause.
NO_REASON_INTERNAL = "ERR_INTERNAL_ERROR: not available yet on this gateway, or it failed (its log says which)"


def error_for(code: int, message: str, method: str) -> TrunklineError:
    """The typed error for ``code``; ``message`` is the gateway's reason, "" when the answer has none."""
    try:
        known = ErrorCode(code)
    except ValueError:
        return TrunklineError(message or f"error code {code}", method)
    if not message:
        message = NO_REASON_INTERNAL if known is ErrorCode.ERR_INTERNAL_ERROR else known.name
    return _BY_CODE.get(known, TrunklineError)(message, method, known)


def error_for_reset(app_error: int, method: str) -> TrunklineError:
    """§4: a stream reset with ``0x100 + ErrorCode`` stands for a failed response with no error field."""
    if 0x100 <= app_error <= 0x1FF:
        return error_for(app_error - 0x100, "", method)
    return TrunklineError(f"stream reset with code 0x{app_error:x}", method)
