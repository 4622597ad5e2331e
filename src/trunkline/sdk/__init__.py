"""Trunkline's typed async Python SDK for the TeleQuick RPC.

It owns the client side of the wire: connecting over QUIC, signing tokens from a service-account
file, one coroutine per RPC, event and audio streams with reconnect. It may import ``wire``, ``auth``
and ``enums``; it must never import the gateway's side (``rpc``, ``calls``, ``sip``, ``media``), so it
can ship alone to applications.
"""

from trunkline.enums import DialplanAction, ErrorCode, EventType, InboundRule
from trunkline.sdk.client import Client
from trunkline.sdk.errors import (
    CertificateRefused,
    CircuitBreakerOpen,
    ConnectionLost,
    InternalError,
    InvalidDestination,
    InvalidTrunk,
    RateLimited,
    TrunklineError,
    Unauthorized,
    ValidationFailed,
)
from trunkline.wire.dtos import AudioFrame, CallEvent

__all__ = [
    "CertificateRefused",
    "Client",
    "AudioFrame",
    "CallEvent",
    "DialplanAction",
    "ErrorCode",
    "EventType",
    "InboundRule",
    "TrunklineError",
    "InvalidTrunk",
    "InvalidDestination",
    "RateLimited",
    "CircuitBreakerOpen",
    "InternalError",
    "ValidationFailed",
    "Unauthorized",
    "ConnectionLost",
]
