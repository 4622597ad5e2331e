"""Signed webhooks: how the gateway signs what it POSTs, and how a receiver checks it.

The scheme is the public TeleQuick webhook verifier's (PROTOCOL.md §6 "Inbound"): the header
``X-Telequick-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``. A
receiver recomputes the HMAC over the raw body it received (not a re-serialised JSON), compares in
constant time, and refuses a ``t`` further than ``tolerance_s`` from its clock, so a captured request
cannot be replayed later. Several ``v1`` values may appear (a secret being rotated); one match is
enough. This module has no dependency beyond the standard library, so a receiver can use it alone::

    from trunkline.webhooks import verify
    verify(secret, request_body, request.headers["X-Telequick-Signature"])  # raises if not genuine
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Telequick-Signature"
EVENT_HEADER = "X-Telequick-Event"
DELIVERY_HEADER = "X-Telequick-Delivery"
TOLERANCE_S = 300


class WebhookSignatureError(ValueError):
    """The request is not proven to come from the gateway; the message says why."""


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Telequick-Signature`` value for ``body``, signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify(secret: str | bytes, body: bytes, header: str, *, tolerance_s: float = TOLERANCE_S,
           now: float | None = None) -> None:
    """Return if ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``; raise
    :class:`WebhookSignatureError` otherwise."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} must carry t=<unix seconds> and v1=<hex>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookSignatureError(f"signed {current - timestamp:+.0f} s from now, beyond {tolerance_s:g} s")
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise WebhookSignatureError("signature does not match the body and secret")
