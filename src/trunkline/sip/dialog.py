"""RFC 3261 §12 dialog state and in-dialog request construction.

A dialog is the peer-to-peer relationship a call lives in: its identifiers, the route set frozen
at creation, the peer's current target and both CSeq spaces. Both UAC and UAS dialogs are the same
object; only their creation differs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

from .message import (
    Headers,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    generate_branch,
)

__all__ = [
    "Dialog",
    "DialogError",
    "DialogState",
    "TARGET_REFRESH_METHODS",
    "dialog_id_from_request",
    "dialog_id_from_response",
]

TARGET_REFRESH_METHODS = frozenset(("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"))
"""Methods whose Contact replaces the remote target (RFC 3261 §12.2, RFC 3311, RFC 6665)."""


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogError(ValueError):
    """A message cannot create or belong to this dialog."""


def dialog_id_from_request(request: SipRequest) -> tuple[str, str, str]:
    """(Call-ID, local tag, remote tag) as seen by the UAS receiving ``request``."""
    return request.call_id, request.to_addr.tag or "", request.from_addr.tag or ""


def dialog_id_from_response(response: SipResponse) -> tuple[str, str, str]:
    """(Call-ID, local tag, remote tag) as seen by the UAC receiving ``response``."""
    return response.call_id, response.from_addr.tag or "", response.to_addr.tag or ""


def _without_tag(addr: NameAddr) -> NameAddr:
    return replace(addr, params={k: v for k, v in addr.params.items() if k != "tag"})


def _contact_uri(message: SipRequest | SipResponse) -> str | None:
    contacts = message.contacts
    if not contacts or contacts[0].uri == "*":
        return None
    return contacts[0].uri


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY
    is_uac: bool = True

    @property
    def id(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def from_uac(
        cls, request: SipRequest, response: SipResponse, *, over_tls: bool = False
    ) -> Dialog:
        """The dialog a 1xx (early) or 2xx (confirmed) with a To tag creates at the UAC (§12.1.2)."""
        if not 100 < response.status < 300:
            raise DialogError(f"a {response.status} response does not create a dialog")
        remote_tag = response.to_addr.tag
        if not remote_tag:
            raise DialogError("response without To tag does not create a dialog")
        target = _contact_uri(response)
        if target is None:
            raise DialogError("dialog-creating response lacks Contact")
        return cls(
            call_id=request.call_id,
            local_tag=request.from_addr.tag or "",
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_addr),
            remote_uri=_without_tag(request.to_addr),
            remote_target=target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=over_tls and request.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            is_uac=True,
        )

    @classmethod
    def from_uas(
        cls, request: SipRequest, response: SipResponse, *, over_tls: bool = False
    ) -> Dialog:
        """The dialog the UAS creates when it sends ``response`` (carrying its To tag, §12.1.1)."""
        if not 100 < response.status < 300:
            raise DialogError(f"a {response.status} response does not create a dialog")
        local_tag = response.to_addr.tag
        if not local_tag:
            raise DialogError("response without To tag does not create a dialog")
        target = _contact_uri(request)
        if target is None:
            raise DialogError("dialog-creating request lacks Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_addr.tag or "",
            local_uri=_without_tag(request.to_addr),
            remote_uri=_without_tag(request.from_addr),
            remote_target=target,
            route_set=list(request.headers.get_all("Record-Route")),
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=over_tls and request.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            is_uac=False,
        )

    # ------------------------------------------------------------------ outgoing requests

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipRequest:
        """A new in-dialog request (BYE, re-INVITE, INFO, REFER, UPDATE…) per §12.2.1.1.

        Takes the next local CSeq. ``via`` gets a fresh branch unless it has one; ``contact`` is
        required by target-refresh methods, where it tells the peer our current target.
        """
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"{method} reuses the CSeq of its INVITE; use create_ack/build_cancel")
        if self.state is DialogState.TERMINATED:
            raise DialogError("dialog is terminated")
        if method in TARGET_REFRESH_METHODS and contact is None:
            raise DialogError(f"{method} needs a Contact")
        if self.local_seq is None:
            # §12.1.1: a UAS starts its own CSeq space; random keeps it unguessable.
            self.local_seq = secrets.randbelow(2**16)
        self.local_seq += 1
        return self._build(method, self.local_seq, via, contact, headers, body)

    def create_ack(
        self,
        invite_seq: int,
        *,
        via: Via,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipRequest:
        """ACK for a 2xx (§13.2.2.4): built like any in-dialog request but with the INVITE's CSeq
        number. Add the INVITE's credentials via ``headers`` when it carried any."""
        return self._build("ACK", invite_seq, via, None, headers, body)

    def _build(
        self,
        method: str,
        seq: int,
        via: Via,
        contact: str | None,
        extra: Iterable[tuple[str, str]],
        body: bytes,
    ) -> SipRequest:
        if via.branch is None:
            via = replace(via, params={**via.params, "branch": generate_branch()})
        uri, routes = self._request_uri_and_routes()
        h = Headers()
        h.add("Via", str(via))
        for route in routes:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", str(replace(self.local_uri, params={**self.local_uri.params,
                                                         "tag": self.local_tag})))
        to = self.remote_uri
        if self.remote_tag:
            to = replace(to, params={**to.params, "tag": self.remote_tag})
        h.add("To", str(to))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{seq} {method}")
        if contact is not None:
            h.add("Contact", contact if contact.lstrip().startswith(("<", '"')) else f"<{contact}>")
        for name, value in extra:
            h.add(name, value)
        return SipRequest(method, uri, h, body)

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        """Loose routing sends to the target via the route set; a strict router (no ``lr``) must
        itself be the Request-URI, with the target appended as the last Route (§12.2.1.1)."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0])
        try:
            loose = SipUri.parse(first.uri).loose_route
        except SipParseError:
            loose = True
        if loose:
            return self.remote_target, list(self.route_set)
        strict_uri = first.uri
        try:
            parsed = SipUri.parse(first.uri)
            parsed.headers = {}
            strict_uri = str(parsed)
        except SipParseError:
            pass
        return strict_uri, [*self.route_set[1:], f"<{self.remote_target}>"]

    # ------------------------------------------------------------------ incoming traffic

    def receive_request(self, request: SipRequest) -> int | None:
        """Check an incoming in-dialog request (§12.2.2); returns an error status or None.

        A CSeq lower than the last one means an out-of-order or replayed request: 500. ACK and
        CANCEL share their INVITE's number and are exempt.
        """
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            return 500
        self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request)
            if target is not None:
                self.remote_target = target
        if request.method == "BYE":
            self.state = DialogState.TERMINATED
        return None

    def receive_response(self, response: SipResponse) -> None:
        """Apply a response to a request this side sent in the dialog (or to the initial INVITE).

        The 2xx that confirms an early dialog recomputes the route set and target; 481 and 408
        end the dialog (§12.2.1.2); a failed initial INVITE ends an early one.
        """
        status = response.status
        cseq = response.cseq
        if status in (408, 481):
            self.state = DialogState.TERMINATED
            return
        if 200 <= status < 300:
            if self.state is DialogState.EARLY and cseq.method == "INVITE":
                self.state = DialogState.CONFIRMED
                if self.is_uac:
                    self.route_set = list(reversed(response.headers.get_all("Record-Route")))
            if cseq.method in TARGET_REFRESH_METHODS:
                target = _contact_uri(response)
                if target is not None:
                    self.remote_target = target
        elif status >= 300 and self.state is DialogState.EARLY and cseq.method == "INVITE":
            self.state = DialogState.TERMINATED

    def sent_response(self, response: SipResponse) -> None:
        """UAS side: our final answer to the dialog-creating INVITE confirms or ends it."""
        if self.state is not DialogState.EARLY or response.cseq.method != "INVITE":
            return
        if 200 <= response.status < 300:
            self.state = DialogState.CONFIRMED
        elif response.status >= 300:
            self.state = DialogState.TERMINATED
