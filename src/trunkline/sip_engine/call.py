"""Outgoing calls: the UAC side of RFC 3261 INVITE, CANCEL, BYE and in-dialog requests.

An :class:`OutgoingCall` is driven entirely by endpoint callbacks (responses, timeouts, in-dialog
requests); it creates no task of its own, so a call setup costs a few function calls beyond the
parsing. The call layer sees it through :class:`CallListener`, whose callbacks run synchronously
inside the event loop and must not block. SDP bodies are opaque bytes here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from trunkline.sip.dialog import TARGET_REFRESH_METHODS, Dialog, DialogError, DialogState
from trunkline.sip.digest import DigestClient
from trunkline.sip.message import (
    Headers,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    build_response,
    generate_call_id,
    generate_tag,
)
from trunkline.sip.session_timer import Session
from trunkline.sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
    build_cancel,
)

from .endpoint import ALLOW, AuthRetry, DigestRetries
from .routing import Credentials, RedirectPolicy, SipTarget, header_summary, next_hop

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

__all__ = ["NO_RESPONSE", "TRANSPORT_FAILED", "CallListener", "CallState", "OutgoingCall"]

log = logging.getLogger(__name__)

_FOLLOWED_REDIRECTS = frozenset((300, 301, 302))
"""3xx that name where the callee is; 305 (deprecated by RFC 3261) and 380 are not followed."""

SUPPORTED = frozenset(("100rel", "timer"))
"""Extensions we implement, so a 2xx may ``Require`` them; any other gets ACK, then BYE
(RFC 3261 §8.1.3.5: the call cannot go on without it)."""

_GLARE_ATTEMPTS = 3
"""re-INVITE tries when the peer answers 491 (our own INVITE crossed theirs, RFC 3261 §14.1)."""


NO_RESPONSE = 1408
"""``on_failed`` status of an INVITE that got no response at all (timer B). It is not 408, which a
carrier may send itself, because a trunk that never answers is a failure, not an unanswered call."""

TRANSPORT_FAILED = 1503
"""``on_failed`` status of an INVITE the network refused (ICMP unreachable, TCP refused or reset).
It is not 503, which a carrier sends when busy, because the trunk itself is not reachable."""


CallState = str
"""One of "calling", "early", "confirmed", "terminating", "terminated"."""


class CallListener(Protocol):
    """What the call layer implements to follow an :class:`OutgoingCall`.

    Callbacks run inside the event loop, synchronously, in protocol order; ``on_terminated`` comes
    exactly once and last. An exception raised by a callback is logged and otherwise ignored
    (``on_reinvite`` or ``on_notify`` raising answers 500).
    """

    def on_provisional(self, status: int, reason: str, sdp: bytes | None) -> None:
        """180/183 and other 101-199 responses (100 Trying is not reported); a retransmitted
        reliable provisional (RFC 3262) is reported once. ``sdp`` of a 183 is the early answer."""

    def on_answered(self, sdp: bytes) -> None:
        """The call was answered (2xx); the ACK has been sent."""

    def on_failed(self, status: int, reason: str, headers: dict[str, str]) -> None:
        """Final non-2xx, 401/403/407 on auth failure, :data:`NO_RESPONSE` or
        :data:`TRANSPORT_FAILED` when no response came (``reason`` then says what happened)."""

    def on_remote_bye(self) -> None:
        """The far end hung up; the engine answered 200."""

    def on_reinvite(self, sdp: bytes | None) -> tuple[int, bytes | None]:
        """A re-INVITE or UPDATE offer: return ``(200, answer)`` or e.g. ``(488, None)``.
        A re-INVITE without SDP (``sdp`` None) asks for an offer: return ``(200, offer)``, and
        its answer comes in the ACK (:meth:`on_ack_answer`). An UPDATE without SDP is a session
        refresh the engine answers itself."""
        ...

    def on_ack_answer(self, sdp: bytes) -> None:
        """The SDP answer in the ACK to the offer we made in a 200 to a re-INVITE without SDP."""

    def on_info(self, content_type: str, body: bytes) -> None:
        """An INFO (e.g. application/dtmf-relay); the engine answers 200."""

    def on_notify(self, event: str | None, subscription_state: str | None, content_type: str,
                  body: bytes) -> int:
        """A NOTIFY (the progress of a REFER we sent, RFC 3515): return the status to answer it
        with, e.g. 200, or 481 when it matches no subscription of ours."""
        ...

    def on_terminated(self) -> None:
        """The call is over for whatever reason; nothing follows."""


class OutgoingCall:
    """One outgoing INVITE and the dialog it creates (see :class:`CallListener` for events).

    States: ``calling`` (INVITE sent), ``early`` (provisional received), ``confirmed`` (answered
    and ACKed), ``terminating`` (CANCEL or BYE in progress), ``terminated``. The listener hears
    ``on_terminated`` as soon as our BYE is sent (RFC 3261 §15.1.1), not when it is answered: a far
    end slow to answer it, or busy with a pending re-INVITE, must not keep the call up.
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        target: SipTarget,
        request_uri: str,
        from_uri: str,
        to_uri: str,
        sdp: bytes,
        listener: CallListener,
        credentials: Credentials | None,
        headers: Sequence[tuple[str, str]],
        redirects: RedirectPolicy | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._target = target
        self._listener = listener
        self._request_uri = request_uri
        self._from = f"{_angle(from_uri)}"
        self._to = _angle(to_uri)
        self._sdp = sdp
        self._extra = list(headers)
        self._auth = (DigestClient(credentials.username, credentials.password)
                      if credentials is not None else None)
        self._digest = DigestRetries(self._auth)
        self._redirects = redirects
        self._redirected = 0
        self.call_id = generate_call_id()
        self.local_tag = generate_tag()
        self.remote_tag: str | None = None
        self.remote_target: str | None = None
        self.final_status: int | None = None
        self.state: CallState = "calling"
        user = _user_of(from_uri)
        self._contact = endpoint.contact(target, user)
        self._seq = 1
        self._local_sdp = sdp  # what a session refresh re-INVITE offers again (RFC 4028 §7.4)
        timers = endpoint.session_timers
        self._session_interval = timers.session_expires if timers is not None else 0
        self._session: Session | None = None
        self._session_since = 0.0  # loop time of the last refresh
        self._session_handle: asyncio.TimerHandle | None = None
        self._peer_allows_update = False
        self._invite = self._build_invite()
        self._invite_txn: InviteClientTransaction | None = None
        self._provisional_seen = False
        self._rseq: int | None = None  # RSeq of the last reliable provisional we PRACKed
        self._cancel_requested = False
        self._cancel_timer: asyncio.TimerHandle | None = None
        self._dialog: Dialog | None = None
        self._dialog_key: tuple[str, str, str] | None = None
        self._ack: SipRequest | None = None
        self._hop = target
        self._invite_pending = False
        self._reinvite_lock: asyncio.Lock | None = None
        self._listener_done = False  # on_terminated has been reported: the listener hears nothing more

    def __repr__(self) -> str:
        return f"OutgoingCall({self.call_id!r}, {self.state})"

    # ------------------------------------------------------------------ public API

    def cancel(self) -> None:
        """CANCEL the INVITE while it has no final response (RFC 3261 §9.1).

        Before any provisional response the CANCEL is held back and sent when one arrives; if none
        ever does, the INVITE times out (timer B) and ``on_failed(408)`` reports it.
        """
        if self.final_status is not None or self.state in ("terminated", "confirmed"):
            return
        if self._cancel_requested:
            return
        self._cancel_requested = True
        self.state = "terminating"
        if self._provisional_seen:
            self._send_cancel()

    def hangup(self) -> None:
        """End the call however far it got: BYE when confirmed, else CANCEL. Idempotent.

        The BYE does not wait for any re-INVITE or other request still pending in the dialog
        (RFC 3261 §15): their answers, arriving later, no longer matter."""
        if self.state == "confirmed":
            self._send_bye()
        elif self.state in ("calling", "early"):
            self.cancel()

    async def reinvite(self, sdp: bytes) -> tuple[int, bytes | None]:
        """Send a re-INVITE offer; returns (final status, answer SDP or None).

        Our re-INVITEs are serialised; a 491 is retried after 2.1-4 s, as the Call-ID owner
        must (§14.1), at most three times. 481 or 408 end the call (§12.2.1.2).
        """
        if self._reinvite_lock is None:
            self._reinvite_lock = asyncio.Lock()
        async with self._reinvite_lock:
            for attempt in range(_GLARE_ATTEMPTS):
                if self.state != "confirmed":
                    return 481, None
                status, answer = await self._send_in_dialog("INVITE", "application/sdp", sdp, ())
                if status != 491 or attempt + 1 == _GLARE_ATTEMPTS:
                    return status, answer
                await asyncio.sleep(random.uniform(2.1, 4.0))
        return 491, None

    async def request(self, method: str, content_type: str = "", body: bytes = b"",
                      headers: Sequence[tuple[str, str]] = ()) -> int:
        """Send an in-dialog INFO, REFER, NOTIFY… and return its final status.

        408 means no answer, 503 a transport failure, 481 that the call is not confirmed.
        """
        method = method.upper()
        if method in ("INVITE", "ACK", "CANCEL", "BYE"):
            raise ValueError(f"use reinvite()/hangup() rather than request({method!r})")
        if self.state != "confirmed":
            return 481
        status, _ = await self._send_in_dialog(method, content_type, body, headers)
        return status

    # ------------------------------------------------------------------ INVITE

    def _build_invite(self) -> SipRequest:
        ep = self._endpoint
        h = ep.request_headers(self._target, self.call_id, self._seq, "INVITE",
                               f"{self._from};tag={self.local_tag}", self._to)
        h.add("Contact", self._contact)
        h.add("Allow", ALLOW)
        for name, value in self._extra:
            h.add(name, value)
        for name, value in self._digest.headers:
            h.add(name, value)
        supported = ["100rel"]
        timers = self._endpoint.session_timers
        if timers is not None:
            for name, value in timers.request_headers(self._session_interval):
                if name == "Supported":
                    supported.append(value)
                else:
                    h.add(name, value)
        h.add("Supported", ", ".join(supported))
        if self._sdp:
            h.add("Content-Type", "application/sdp")
        return SipRequest("INVITE", self._request_uri, h, self._sdp)

    def _start(self) -> None:
        self._provisional_seen = False
        self._invite_txn = self._endpoint.start_client(  # type: ignore[assignment]
            self._invite, self._target, self._on_invite_message, self._on_invite_error
        )

    def _on_invite_message(self, message: SipRequest | SipResponse) -> None:
        if not isinstance(message, SipResponse):
            return
        status = message.status
        if status < 200:
            self._on_provisional(message)
        elif status < 300:
            self._on_2xx(message)
        elif not (status in (401, 407) and self._retry_with_auth(message)
                  or status == 422 and self._retry_with_longer_session(message)
                  or status in _FOLLOWED_REDIRECTS and self._follow_redirect(message)):
            self._fail(status, message.reason, header_summary(message.headers))

    def _on_invite_error(self, status: int, reason: str) -> None:
        if status == 408:
            self._fail(NO_RESPONSE, "no response (timer B)", {})
        else:
            self._fail(TRANSPORT_FAILED, reason, {})

    def _on_provisional(self, response: SipResponse) -> None:
        if not self._provisional_seen:
            self._provisional_seen = True
            if self._cancel_requested:
                self._send_cancel()
        if response.status == 100 or self.state not in ("calling", "early"):
            return
        self.state = "early"
        tag = response.to_addr.tag
        if tag and (self._dialog is None or self._dialog.remote_tag != tag):
            try:
                self._set_dialog(Dialog.from_uac(self._invite, response))
                self._rseq = None
            except (DialogError, SipParseError):
                pass  # no Contact: the early dialog only matters once the 2xx arrives
        if _has_token(response.headers, "Require", "100rel") and not self._prack(response):
            return
        self._notify("on_provisional", response.status, response.reason, response.body or None)

    def _prack(self, response: SipResponse) -> bool:
        """PRACK a reliable provisional (RFC 3262 §4); False for one the listener must not hear
        again: a retransmission, one out of order, or one that we cannot acknowledge."""
        dialog = self._dialog
        try:
            rseq = int(response.headers.get("RSeq") or "")
        except ValueError:
            rseq = -1
        if dialog is None or dialog.remote_tag != response.to_addr.tag or not 0 < rseq < 2**31:
            log.warning("call %s: reliable %d without a valid RSeq or early dialog; not PRACKed",
                        self.call_id, response.status)
            return False
        if self._rseq is not None and rseq != self._rseq + 1:
            return False  # our PRACK's own transaction retransmits it; a gap waits for its turn
        self._rseq = rseq
        self._hop = self._next_hop(dialog)
        cseq = response.cseq
        future: asyncio.Future[tuple[int, bytes | None]] = (
            asyncio.get_running_loop().create_future())
        _InDialogRequest(self, dialog, "PRACK", [("RAck", f"{rseq} {cseq.seq} {cseq.method}")],
                         b"", future).send()
        future.add_done_callback(lambda done: self._prack_done(rseq, done.result()[0]))
        return True

    def _prack_done(self, rseq: int, status: int) -> None:
        if status >= 300:
            log.warning("call %s: PRACK for RSeq %d answered %d", self.call_id, rseq, status)

    def _on_2xx(self, response: SipResponse) -> None:
        dialog = self._dialog
        tag = response.to_addr.tag or ""
        if dialog is not None and dialog.state is DialogState.CONFIRMED:
            if tag == dialog.remote_tag:
                if self._ack is not None and response.cseq.seq == self._invite.cseq.seq:
                    self._endpoint.send_stateless(self._ack, self._hop)  # 2xx retransmission
            else:
                self._ack_and_bye(response)  # a second fork answered (§13.2.2.4)
            return
        if self.state == "terminated":
            self._ack_and_bye(response)
            return
        if dialog is not None and dialog.remote_tag == tag:
            dialog.receive_response(response)
        else:
            dialog = self._uac_dialog(response)
            self._set_dialog(dialog)
        self.final_status = response.status
        self.remote_tag = tag
        self.remote_target = dialog.remote_target
        self._hop = self._next_hop(dialog)
        self._ack = dialog.create_ack(self._invite.cseq.seq, via=self._endpoint.via(self._hop),
                                      headers=self._digest.headers)
        self._endpoint.send_stateless(self._ack, self._hop)
        self._stop_cancel_timer()
        if self._cancel_requested:
            # The answer crossed our CANCEL: the call must still be torn down, by BYE.
            self.state = "confirmed"
            self._send_bye()
            return
        self.state = "confirmed"
        unsupported = [token for value in response.headers.get_all("Require")
                       for token in (item.strip().lower() for item in value.split(","))
                       if token and token not in SUPPORTED]
        if unsupported:
            log.warning("call %s: 2xx requires %s, which we do not support; sending BYE",
                        self.call_id, ", ".join(unsupported))
            self._notify("on_failed", 420, f"2xx requires {', '.join(unsupported)}", {})
            self._send_bye()
            return
        self._peer_allows_update = _has_token(response.headers, "Allow", "UPDATE")
        self._session_granted(response)
        self._notify("on_answered", response.body)

    def _stray_2xx(self, response: SipResponse) -> None:
        self._on_2xx(response)

    def _uac_dialog(self, response: SipResponse) -> Dialog:
        """The dialog a 2xx creates; a broken peer without Contact is reached at the Request-URI."""
        try:
            return Dialog.from_uac(self._invite, response)
        except (DialogError, SipParseError):
            return Dialog(
                call_id=self.call_id, local_tag=self.local_tag,
                remote_tag=response.to_addr.tag or "",
                local_uri=NameAddr.parse(self._from), remote_uri=NameAddr.parse(self._to),
                remote_target=self._invite.uri,
                route_set=list(reversed(response.headers.get_all("Record-Route"))),
                local_seq=self._invite.cseq.seq, state=DialogState.CONFIRMED, is_uac=True,
            )

    def _ack_and_bye(self, response: SipResponse) -> None:
        extra = self._uac_dialog(response)
        hop = self._next_hop(extra)
        via = self._endpoint.via(hop)
        self._endpoint.send_stateless(
            extra.create_ack(response.cseq.seq, via=via, headers=self._digest.headers), hop)
        bye = extra.create_request("BYE", via=self._endpoint.via(hop))
        self._endpoint.start_client(bye, hop, None, None)

    def _retry_with_auth(self, response: SipResponse) -> bool:
        """Answer a 401/407 with a new INVITE: next CSeq, same Call-ID and From tag (§22.2)."""
        if self._cancel_requested or not self._digest.answer(response, self._invite):
            return False
        self._seq += 1
        self._invite = self._build_invite()
        self._start()
        return True

    def _retry_with_longer_session(self, response: SipResponse) -> bool:
        """Answer a 422 with a new INVITE asking for the Min-SE it names (RFC 4028 §7.3)."""
        timers = self._endpoint.session_timers
        interval = timers.retry_interval(response, self._session_interval) if timers else None
        if self._cancel_requested or interval is None:
            return False
        self._session_interval = interval
        self._seq += 1
        self._invite = self._build_invite()
        self._start()
        return True

    def _follow_redirect(self, response: SipResponse) -> bool:
        """INVITE the Contact a 300/301/302 names (RFC 3261 §8.1.3.4), if the policy allows it:
        same Call-ID, From and To, next CSeq, a new Request-URI and target."""
        policy = self._redirects
        if policy is None or self._cancel_requested:
            return False
        if self._redirected >= policy.limit:
            log.warning("call %s: %d not followed, %d redirects already", self.call_id,
                        response.status, self._redirected)
            return False
        chosen, refused = policy.choose(response, self._target)
        for uri in refused:
            log.warning("call %s: %d Contact %s refused: not the trunk's host nor in its redirect_hosts",
                        self.call_id, response.status, uri)
        if chosen is None:
            return False
        self._redirected += 1
        self._request_uri, self._target = chosen
        self._hop = self._target
        log.info("call %s: %d, following to %s", self.call_id, response.status, self._request_uri)
        if self._dialog_key is not None:  # an early dialog of the old target
            self._endpoint.remove_dialog(self._dialog_key, self)
            self._dialog, self._dialog_key = None, None
        self._digest = DigestRetries(self._auth)
        self._seq += 1
        self._invite = self._build_invite()
        self._start()
        return True

    def _send_cancel(self) -> None:
        self._endpoint.start_client(build_cancel(self._invite), self._target, None, None)
        self._cancel_timer = self._endpoint.call_later(64 * self._endpoint.timers.t1,
                                                       self._cancel_expired)

    def _cancel_expired(self) -> None:
        """No final response 64*T1 after CANCEL: consider the INVITE dead (§9.1)."""
        self._cancel_timer = None
        if self.final_status is None and self.state != "terminated":
            if self._invite_txn is not None:
                self._endpoint.abandon(self._invite_txn)
            self._fail(408, "Request Timeout", {})

    def _stop_cancel_timer(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer.cancel()
            self._cancel_timer = None

    # ------------------------------------------------------------------ dialog

    def _set_dialog(self, dialog: Dialog) -> None:
        if self._dialog_key is not None:
            self._endpoint.remove_dialog(self._dialog_key, self)
        self._dialog = dialog
        self._dialog_key = dialog.id
        self._endpoint.add_dialog(dialog.id, self)

    def _next_hop(self, dialog: Dialog) -> SipTarget:
        if dialog.route_set:
            try:
                return next_hop(NameAddr.parse(dialog.route_set[0]).uri, self._target)
            except SipParseError:
                return self._target
        return next_hop(dialog.remote_target, self._target)

    def _send_bye(self) -> None:
        dialog = self._dialog
        self.state = "terminating"
        self._stop_session()
        if dialog is None:
            self._terminate()
            return
        hop = self._hop

        def build(seq: int, extra: Sequence[tuple[str, str]]) -> SipRequest:
            return dialog.create_request("BYE", via=self._endpoint.via(hop),
                                         headers=[("User-Agent", self._endpoint.user_agent),
                                                  *extra])

        AuthRetry(self._endpoint, hop, build, self._auth,
                  lambda status, response: self._terminate()).start()
        # Over for the listener now; the dialog stays until the BYE is answered, so that a crossing
        # BYE still gets its 200 and a retransmitted 2xx its ACK.
        self._tell_terminated()

    async def _send_in_dialog(self, method: str, content_type: str, body: bytes,
                              headers: Sequence[tuple[str, str]]) -> tuple[int, bytes | None]:
        assert self._dialog is not None
        future: asyncio.Future[tuple[int, bytes | None]] = (
            asyncio.get_running_loop().create_future())
        base = list(headers)
        if content_type:
            base.append(("Content-Type", content_type))
        is_invite = method == "INVITE"
        if is_invite:
            self._invite_pending = True
        _InDialogRequest(self, self._dialog, method, base, body, future).send()
        try:
            status, answer = await future
        finally:
            if is_invite:
                self._invite_pending = False
        self._after_in_dialog(status)
        return status, answer

    def _after_in_dialog(self, status: int) -> None:
        """§12.2.1.2: 481 means the dialog is gone; 408 (or a dead transport) means hang up."""
        if self.state != "confirmed":
            return
        if status == 481:
            self._terminate()
        elif status in (408, 503):
            self._send_bye()

    def _handle_request(self, request: SipRequest,
                        txn: InviteServerTransaction | NonInviteServerTransaction) -> None:
        """Answer a request the far end sent in our dialog."""
        ep = self._endpoint
        dialog = self._dialog
        assert dialog is not None
        error = dialog.receive_request(request)
        if error is not None:
            ep._respond(txn, build_response(request, error))
            return
        method = request.method
        if self._listener_done and method != "BYE":  # our BYE is out: nothing else is taken up
            ep._respond(txn, build_response(request, 481))
            return
        if method == "BYE":
            ep._respond(txn, build_response(request, 200))
            if self.state != "terminated":
                if self.state != "terminating":
                    self._notify("on_remote_bye")
                self._terminate()
        elif method in ("INVITE", "UPDATE"):
            if method == "INVITE" and self._invite_pending:
                ep._respond(txn, build_response(request, 491))
                return
            timers = ep.session_timers
            session: Session | None = None
            headers: list[tuple[str, str]] = []
            if timers is not None:
                status, headers, session = timers.answer(request)
                if status == 422:
                    ep._respond(txn, build_response(request, 422, headers=headers))
                    return
            offer = request.body or None
            if offer is None and method == "UPDATE":
                status, answer = 200, None  # a refresh, not an offer: no SDP back (RFC 3311 §5.2)
            else:
                try:
                    status, answer = self._listener.on_reinvite(offer)
                except Exception:
                    log.exception("on_reinvite failed")
                    status, answer = 500, None
            if 200 <= status < 300:
                headers.append(("Contact", self._contact))
                if answer:
                    headers.append(("Content-Type", "application/sdp"))
                    self._local_sdp = answer
                self._start_session(session)
            else:
                headers = []
            response = build_response(request, status, headers=headers,
                                      body=answer if 200 <= status < 300 and answer else b"")
            on_ack = (self._ack_answer if method == "INVITE" and offer is None and answer
                      and 200 <= status < 300 else None)
            ep._respond(txn, response, on_ack_timeout=self.hangup, on_ack=on_ack)
        elif method == "INFO":
            self._notify("on_info", request.headers.get("Content-Type") or "", request.body)
            ep._respond(txn, build_response(request, 200))
        elif method == "NOTIFY":
            fields = request.headers
            try:
                status = self._listener.on_notify(fields.get("Event"), fields.get("Subscription-State"),
                                                  fields.get("Content-Type") or "", request.body)
            except Exception:
                log.exception("on_notify failed")
                status = 500
            ep._respond(txn, build_response(request, status))
        elif method == "OPTIONS":
            ep._respond(txn, build_response(request, 200, headers=(("Allow", ALLOW),)))
        else:
            ep._respond(txn, build_response(request, 501, headers=(("Allow", ALLOW),)))

    def _ack_answer(self, ack: SipRequest | SipResponse) -> None:
        """The ACK to our offer in a 200 (delayed-offer re-INVITE) carries the answer (RFC 3264)."""
        if self._listener_done:
            return
        if not ack.body:
            log.warning("call %s: ACK without the SDP answer to our offer; media unchanged",
                        self.call_id)
            return
        self._notify("on_ack_answer", ack.body)

    # ------------------------------------------------------------------ session timer (RFC 4028)

    def _session_headers(self) -> list[tuple[str, str]]:
        """What our re-INVITEs and UPDATEs say about the session timer: each one refreshes it."""
        timers = self._endpoint.session_timers
        if timers is None:
            return []
        session = self._session
        refresher = None if session is None else "uac" if session.we_refresh else "uas"
        return timers.request_headers(self._session_interval, refresher)

    def _session_granted(self, response: SipResponse) -> None:
        """A 2xx to our INVITE, re-INVITE or UPDATE: the session timer it sets, or none."""
        timers = self._endpoint.session_timers
        self._start_session(timers.granted(response) if timers is not None else None)

    def _start_session(self, session: Session | None) -> None:
        """One timer per call, re-armed at every refresh to our next duty (refresh or expiry)."""
        self._stop_session()
        self._session = session
        if session is None or self.state != "confirmed":
            return
        self._session_interval = session.interval
        self._session_since = self._endpoint._now()
        self._session_handle = self._endpoint.call_later(session.due_in, self._session_due)

    def _stop_session(self) -> None:
        if self._session_handle is not None:
            self._session_handle.cancel()
            self._session_handle = None

    def _session_due(self) -> None:
        self._session_handle = None
        session = self._session
        if session is None or self.state != "confirmed" or self._dialog is None:
            return
        if not session.we_refresh:
            log.info("call %s: no session refresh from the peer within %d s (RFC 4028); sending BYE",
                     self.call_id, session.interval)
            self._notify("on_failed", NO_RESPONSE, "session expired without a refresh", {})
            self._send_bye()
            return
        method = "UPDATE" if self._peer_allows_update else "INVITE"
        if method == "INVITE" and self._invite_pending:
            # The re-INVITE in flight refreshes the session when answered; look again shortly.
            self._session_handle = self._endpoint.call_later(1.0, self._session_due)
            return
        body = self._local_sdp if method == "INVITE" else b""
        base = [("Content-Type", "application/sdp")] if body else []
        future: asyncio.Future[tuple[int, bytes | None]] = asyncio.get_running_loop().create_future()
        if method == "INVITE":
            self._invite_pending = True
        _InDialogRequest(self, self._dialog, method, base, body, future).send()
        future.add_done_callback(lambda done: self._refresh_done(method, done.result()[0]))

    def _refresh_done(self, method: str, status: int) -> None:
        """A refused refresh leaves the session to expire: the peer will not wait past expiry
        either, so the call ends then unless the peer refreshes it meanwhile."""
        if method == "INVITE":
            self._invite_pending = False
        self._after_in_dialog(status)
        session = self._session
        if status < 300 or session is None or self.state != "confirmed":
            return
        log.warning("call %s: session refresh %s answered %d", self.call_id, method, status)
        self._session = Session(session.interval, we_refresh=False)
        self._stop_session()
        delay = self._session_since + self._session.due_in - self._endpoint._now()
        self._session_handle = self._endpoint.call_later(max(delay, 0.0), self._session_due)

    # ------------------------------------------------------------------ ending

    def _fail(self, status: int, reason: str, headers: dict[str, str]) -> None:
        if self.state == "terminated":
            return
        if self.final_status is None:
            self.final_status = status
        self._notify("on_failed", status, reason, headers)
        self._terminate()

    def _terminate(self) -> None:
        if self.state == "terminated":
            return
        self.state = "terminated"
        self._stop_cancel_timer()
        self._stop_session()
        if self._dialog_key is not None:
            self._endpoint.remove_dialog(self._dialog_key, self)
        self._endpoint._calls.discard(self)
        self._tell_terminated()

    def _tell_terminated(self) -> None:
        self._notify("on_terminated")
        self._listener_done = True

    def _endpoint_closed(self) -> None:
        if self.state in ("calling", "early"):
            self._fail(503, "Endpoint Closed", {})
        else:
            self._terminate()

    def _notify(self, name: str, *args: Any) -> None:
        if self._listener_done:
            return
        try:
            getattr(self._listener, name)(*args)
        except Exception:
            log.exception("CallListener.%s failed", name)


def _angle(uri: str) -> str:
    """A From/To value: bare URIs get angle brackets so their parameters stay URI parameters."""
    uri = uri.strip()
    return uri if uri.startswith(("<", '"')) or "<" in uri else f"<{uri}>"


def _has_token(headers: Headers, name: str, token: str) -> bool:
    """Whether a list header (Allow, Supported) names ``token``."""
    return any(token.lower() == item.strip().lower()
               for value in headers.get_all(name) for item in value.split(","))


def _user_of(uri: str) -> str | None:
    try:
        return NameAddr.parse(uri).sip_uri().user
    except SipParseError:
        return None



class _InDialogRequest:
    """One in-dialog request we send (re-INVITE, INFO, REFER…), with its digest retries.

    For a re-INVITE it also ACKs every 2xx, retransmissions included, with the same ACK.
    """

    __slots__ = ("_call", "_dialog", "_method", "_base", "_body", "_future", "_digest",
                 "_request", "_ack", "_hop")

    def __init__(self, call: OutgoingCall, dialog: Dialog, method: str,
                 base: list[tuple[str, str]], body: bytes,
                 future: asyncio.Future[tuple[int, bytes | None]]) -> None:
        self._call = call
        self._dialog = dialog
        self._method = method
        self._base = base
        self._body = body
        self._future = future
        self._digest = DigestRetries(call._auth)
        self._request: SipRequest | None = None
        self._ack: SipRequest | None = None
        self._hop = call._hop

    def send(self) -> None:
        call = self._call
        contact = call._contact if self._method in TARGET_REFRESH_METHODS else None
        session = call._session_headers() if self._method in ("INVITE", "UPDATE") else []
        self._request = self._dialog.create_request(
            self._method, via=call._endpoint.via(self._hop), contact=contact,
            headers=[*self._base, *session, *self._digest.headers], body=self._body)
        call._endpoint.start_client(self._request, self._hop, self._on_message, self._on_error)

    def _on_message(self, message: SipRequest | SipResponse) -> None:
        if not isinstance(message, SipResponse) or message.status < 200:
            return
        request = self._request
        assert request is not None
        endpoint = self._call._endpoint
        if self._method == "INVITE" and message.status < 300:
            if self._ack is None:
                self._ack = self._dialog.create_ack(request.cseq.seq, via=endpoint.via(self._hop),
                                                    headers=self._digest.headers)
            endpoint.send_stateless(self._ack, self._hop)
        if self._future.done():
            return
        if message.status in (401, 407) and self._digest.answer(message, request):
            self.send()
            return
        if message.status == 422 and self._retry_with_longer_session(message):
            return
        self._dialog.receive_response(message)
        if 200 <= message.status < 300 and self._method in ("INVITE", "UPDATE"):
            if self._body:
                self._call._local_sdp = self._body
            self._call._session_granted(message)
        self._future.set_result((message.status, message.body or None))

    def _retry_with_longer_session(self, response: SipResponse) -> bool:
        call = self._call
        timers = call._endpoint.session_timers
        if timers is None or self._method not in ("INVITE", "UPDATE"):
            return False
        interval = timers.retry_interval(response, call._session_interval)
        if interval is None:
            return False
        call._session_interval = interval
        self.send()
        return True

    def _on_error(self, status: int, reason: str) -> None:
        if not self._future.done():
            self._future.set_result((status, None))
