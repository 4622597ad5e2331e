"""POSTs signed webhook notifications (an incoming call waiting for AnswerIncomingCall) to the
tenant's receiver, never blocking the event loop or a call.

Each attempt is one HTTP request in a worker thread (urllib: the standard library's client, with
certificate checks and no dependency; a webhook is rare, so a thread per attempt is cheap), with a
5 s timeout. Connection errors, timeouts and 5xx answers are retried with backoff until the deadline
(the call's ring window), 2xx ends delivery, anything else ends it as failed. Redirects are not
followed: a receiver that moved says so in the log, and a notification is never handed to a host
the tenant did not name. ``http://`` goes to loopback only unless the tenant allows it. Every
attempt of one delivery carries the same ``X-Telequick-Delivery`` id, so a receiver can drop
repeats, and a fresh signature.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from trunkline import __version__
from trunkline.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

ATTEMPT_TIMEOUT_S = 5.0
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)  # then 4 s between attempts
SECRET_FILE = "webhook_secret"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one notification went: ``status`` is the receiver's last HTTP status, if it answered."""

    delivered: bool
    attempts: int
    status: int | None
    detail: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None  # the 3xx surfaces as an HTTPError with its Location


_OPENER = urllib.request.build_opener(_NoRedirect())


def url_refusal(url: str, allow_http: bool) -> str | None:
    """Why ``url`` may not receive webhooks, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        return f"{url!r}: http:// goes to loopback only unless the tenant allows it; use https://"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSender:
    def __init__(self, *, attempt_timeout_s: float = ATTEMPT_TIMEOUT_S, backoff_s: Sequence[float] = BACKOFF_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.attempt_timeout_s = attempt_timeout_s
        self.backoff_s = tuple(backoff_s)
        self._clock = clock

    async def post(self, url: str, event: str, payload: dict, secret: str, *, deadline: float,
                   allow_http: bool = False) -> Delivery:
        """Deliver ``payload`` as JSON to ``url`` by ``deadline`` (on this sender's clock)."""
        refusal = url_refusal(url, allow_http)
        if refusal is not None:
            log.warning("webhook %s not sent: %s", event, refusal)
            return Delivery(False, 0, None, refusal)
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery_id = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        attempts, status, detail = 0, None, ""
        while True:
            left = deadline - self._clock()
            if left <= 0:
                break
            attempts += 1
            headers = {"Content-Type": "application/json", "User-Agent": f"trunkline/{__version__}",
                       EVENT_HEADER: event, DELIVERY_HEADER: delivery_id, SIGNATURE_HEADER: sign(secret, body)}
            status, detail, retry = await loop.run_in_executor(
                None, _attempt, url, body, headers, min(self.attempt_timeout_s, left))
            if not retry:
                break
            pause = self.backoff_s[min(attempts - 1, len(self.backoff_s) - 1)] if self.backoff_s else 0.0
            if self._clock() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        delivered = status is not None and 200 <= status < 300
        outcome = Delivery(delivered, attempts, status, detail or "the deadline passed before a first attempt")
        (log.info if delivered else log.warning)("webhook %s %s to %s after %d attempt(s): %s", event, delivery_id,
                                                 url, attempts, outcome.detail)
        return outcome


def _attempt(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str, bool]:
    """One POST: (status or None, what happened, whether another attempt may help)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, f"delivered ({response.status})", False
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return exc.code, f"answered {exc.code} to {exc.headers.get('Location', '?')}; redirects are not followed", False
        return exc.code, f"answered {exc.code} {exc.reason}", exc.code >= 500
    except (urllib.error.URLError, OSError) as exc:  # refused, reset, unresolvable, timed out
        reason = getattr(exc, "reason", exc)
        return None, f"not reached: {reason}", True


def ensure_webhook_secret(data_dir: Path) -> str:
    """The gateway's own webhook secret (for tenants that configure none), made once in ``data_dir``."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + secrets.token_hex(24)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret
