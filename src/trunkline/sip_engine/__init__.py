"""SIP engine of Trunkline: transports, the transaction/timer driver and the user agent.

It owns the SIP sockets (UDP plus TCP on the same port, TLS on its own), drives the pure state
machines of :mod:`trunkline.sip` with real time from the event loop (one timer handle per endpoint,
re-armed to the transaction table's next deadline, never a task per transaction), and implements
the user agent on top: outgoing calls with digest authentication, CANCEL and BYE, redirects,
session timers, reliable provisionals, answering in-dialog requests, OPTIONS pings and
registrations, and the RFC 3263 lookup of trunk host names (:mod:`.resolver`, dnspython). Protocol
decisions stay in the sans-I/O core or in the small pure helpers of :mod:`.routing`; this package
is the thin asyncio edge around them.

It may import ``trunkline.sip`` only (of Trunkline's packages). It must not import ``media``, ``media_engine``, ``calls``,
``rpc``, ``sdk``, ``cli`` or ``wire``: SDP bodies are opaque bytes here, and the call layer builds
on this package rather than the reverse.
"""

from trunkline.sip.session_timer import SessionTimers
from trunkline.sip.transaction import TimerConfig

from .call import CallListener, CallState, OutgoingCall
from .endpoint import (
    ALLOW,
    EndpointStats,
    IncomingInvite,
    SipEndpoint,
    SipTimeoutError,
    SipTransportError,
)
from .registration import Registration, RegistrationState
from .routing import Credentials, RedirectPolicy, SipTarget

__all__ = [
    "ALLOW",
    "CallListener",
    "CallState",
    "Credentials",
    "EndpointStats",
    "IncomingInvite",
    "OutgoingCall",
    "RedirectPolicy",
    "Registration",
    "RegistrationState",
    "SipEndpoint",
    "SipTarget",
    "SipTimeoutError",
    "SessionTimers",
    "SipTransportError",
    "TimerConfig",
]
