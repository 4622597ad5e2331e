"""REGISTER bindings kept alive for as long as the call layer needs them (RFC 3261 §10).

A :class:`Registration` sends REGISTER (answering digest challenges), reads the lifetime the
registrar granted, and refreshes it before expiry with one event-loop timer; a failure is retried
after a pause. Its state is observable through attributes and an ``on_change`` callback, which is
how a trunk's health reaches monitoring without polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from trunkline.sip.digest import DigestClient
from trunkline.sip.message import SipRequest, SipResponse, generate_call_id, generate_tag

from .endpoint import AuthRetry, uri_hostport
from .routing import Credentials, SipTarget, granted_expires, refresh_delay

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

__all__ = ["Registration", "RegistrationState"]

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 30.0
"""Seconds before a failed registration is tried again (also the floor for a Retry-After)."""

_MAX_INTERVAL_RETRIES = 2

RegistrationState = str
"""One of "registering", "registered", "failed", "unregistering", "unregistered"."""


class Registration:
    """One address-of-record bound to this endpoint's Contact at one registrar.

    ``state``, ``status`` (last final status, 408/503 for timeout/transport failure) and
    ``expires`` (seconds granted) describe it; ``on_change`` is called after each change.
    """

    def __init__(self, endpoint: SipEndpoint, target: SipTarget, aor: str,
                 credentials: Credentials | None, expires: int) -> None:
        self._endpoint = endpoint
        self.target = target
        self.aor = aor
        self.requested_expires = expires
        self.state: RegistrationState = "registering"
        self.status: int | None = None
        self.expires: int | None = None
        self.on_change: Callable[[Registration], None] | None = None
        self._auth = (DigestClient(credentials.username, credentials.password)
                      if credentials is not None else None)
        self._uri = uri_hostport(aor)
        self._call_id = generate_call_id()
        self._tag = generate_tag()
        self._contact = endpoint.contact(target, _user(aor))
        self._seq = 0
        self._asking = expires
        self._interval_retries = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Future[int | None] | None = None
        self._removal_sent = False

    def __repr__(self) -> str:
        return f"Registration({self.aor!r}, {self.state}, status={self.status})"

    def _start(self) -> None:
        self._send(self._asking)

    async def stop(self) -> int | None:
        """Remove the binding (REGISTER with expires 0) and stop refreshing.

        Returns the registrar's final status, or None when nothing was registered.
        """
        self._cancel_timer()
        if self.state in ("unregistering", "unregistered"):
            return None if self._stopped is None else await self._stopped
        was_bound = self.state == "registered"
        self._set_state("unregistering")
        self._stopped = asyncio.get_running_loop().create_future()
        if not was_bound:
            self._finish(None)
        else:
            self._removal_sent = True
            self._send(0)
        return await self._stopped

    def _send(self, expires: int) -> None:
        def build(seq: int, extra: Sequence[tuple[str, str]]) -> SipRequest:
            self._seq = seq
            h = self._endpoint.request_headers(self.target, self._call_id, seq, "REGISTER",
                                               f"<{self.aor}>;tag={self._tag}", f"<{self.aor}>")
            h.add("Contact", f"{self._contact};expires={expires}")
            h.add("Expires", str(expires))
            for name, value in extra:
                h.add(name, value)
            return SipRequest("REGISTER", self._uri, h)

        def done(status: int, response: SipResponse | None) -> None:
            self._on_final(expires, status, response)

        AuthRetry(self._endpoint, self.target, build, self._auth, done,
                  first_seq=self._seq + 1).start()

    def _on_final(self, expires: int, status: int, response: SipResponse | None) -> None:
        if expires == 0:
            self._finish(status)
            return
        if self.state in ("unregistering", "unregistered"):
            if response is not None and 200 <= status < 300 and not self._removal_sent:
                # stop() came while this REGISTER was in flight: remove what it just created.
                self._removal_sent = True
                self._send(0)
            return
        self.status = status
        if response is not None and 200 <= status < 300:
            granted = granted_expires(response, self._contact.strip("<>"), expires)
            self.expires = granted
            self._interval_retries = 0
            self._set_state("registered")
            if granted > 0:
                self._schedule(refresh_delay(granted), self._asking)
            return
        if (response is not None and status == 423
                and self._interval_retries < _MAX_INTERVAL_RETRIES):
            minimum = (response.headers.get("Min-Expires") or "").strip()
            if minimum.isdigit():
                self._interval_retries += 1
                self._asking = int(minimum)
                self._send(self._asking)
                return
        self.expires = None
        self._set_state("failed")
        self._schedule(RETRY_AFTER_FAILURE, self._asking)

    def _schedule(self, delay: float, expires: int) -> None:
        self._cancel_timer()
        self._timer = self._endpoint.call_later(delay, lambda: self._refresh(expires))

    def _refresh(self, expires: int) -> None:
        self._timer = None
        if self.state in ("registered", "failed"):
            self._send(expires)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self, status: int | None) -> None:
        if status is not None:
            self.status = status
        self.expires = None
        self._set_state("unregistered")
        self._endpoint._registrations.discard(self)
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(status)

    def _endpoint_closed(self) -> None:
        self._cancel_timer()
        if self.state != "unregistered":
            self._finish(None)

    def _set_state(self, state: RegistrationState) -> None:
        self.state = state
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("Registration.on_change failed")


def _user(aor: str) -> str | None:
    user = aor.partition(":")[2].partition("@")
    return user[0] if user[1] else None
