"""Pure addressing decisions of the SIP engine: targets, Via stamping, next hops, refresh times.

They are kept apart from the asyncio code so that the RFC 3261 §18 / RFC 3581 rules (where a
response goes, what a received request's Via must say) and the registration arithmetic can be
unit-tested without sockets, and so the hot path stays free of anything but dict and string work.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from trunkline.sip.message import Headers, NameAddr, SipParseError, SipRequest, SipResponse, SipUri, Via

__all__ = [
    "Credentials",
    "RedirectPolicy",
    "SipTarget",
    "TRANSPORTS",
    "granted_expires",
    "header_summary",
    "is_ip_literal",
    "next_hop",
    "refresh_delay",
    "response_target",
    "stamp_via",
]

TRANSPORTS = ("udp", "tcp", "tls")
"""Transports the engine speaks; TLS is TCP's framing inside a TLS session (RFC 3261 §26)."""

_DEFAULT_PORT = 5060
_DEFAULT_TLS_PORT = 5061


@dataclass(frozen=True, slots=True)
class SipTarget:
    """Where to send: an address and a transport. It doubles as the engine's flow key.

    ``host`` should be an IP literal: RFC 3263 lookups happen before a target is made
    (:mod:`.resolver`), never inside the engine.
    """

    host: str
    port: int
    transport: str = "udp"

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unsupported SIP transport {self.transport!r}; use one of {TRANSPORTS}")
        if not 0 < self.port < 65536:
            raise ValueError(f"bad port {self.port}")

    @property
    def reliable(self) -> bool:
        """Reliable transports get no retransmission timers (RFC 3261 §17)."""
        return self.transport != "udp"

    @classmethod
    def parse(cls, text: str, transport: str = "udp") -> SipTarget:
        """``host:port`` (IPv6 in brackets) as tests and configuration write it."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected host:port, got {text!r}")
        return cls(host.strip("[]"), int(port), transport)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials for a trunk; the password stays out of reprs and logs."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RedirectPolicy:
    """Which 3xx a call follows (RFC 3261 §8.1.3.4): at most ``limit`` of them, and only to
    ``hosts`` (the trunk's own and those it names), so a redirect cannot send a paid call anywhere."""

    limit: int = 3
    hosts: frozenset[str] = frozenset()

    def choose(self, response: SipResponse,
               fallback: SipTarget) -> tuple[tuple[str, SipTarget] | None, list[str]]:
        """The Contact to try next, highest q first, with its target; and the Contacts refused."""
        refused: list[str] = []
        ranked: list[tuple[float, int, str]] = []
        for index, contact in enumerate(_contacts(response)):
            try:
                q = float(contact.params.get("q") or 1.0)
                host = contact.sip_uri().host.strip("[]").lower()
            except (SipParseError, ValueError):
                refused.append(contact.uri)
                continue
            if host in self.hosts:
                ranked.append((-q, index, contact.uri))
            else:
                refused.append(contact.uri)
        if not ranked:
            return None, refused
        uri = min(ranked)[2]
        return (uri, next_hop(uri, fallback)), refused


def _contacts(response: SipResponse) -> list[NameAddr]:
    try:
        return response.contacts
    except SipParseError:
        return []


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def stamp_via(request: SipRequest, host: str, port: int) -> Via:
    """Record where a request really came from in its top Via and return that Via.

    RFC 3261 §18.2.1 adds ``received`` when the sent-by host is not the source address, and
    RFC 3581 §4 fills an empty ``rport`` with the source port (and then always adds ``received``).
    The response builder copies the stamped Via, and :func:`response_target` reads it, so NATed
    peers get their answers at the address they sent from.
    """
    vias = request.headers.get_all("Via")
    via = Via.parse(vias[0])
    changed = False
    if "rport" in via.params and not via.params["rport"]:
        via.params["rport"] = str(port)
        via.params["received"] = host
        changed = True
    elif via.host.strip("[]") != host:
        via.params["received"] = host
        changed = True
    if changed:
        request.headers.set("Via", str(via))
        for other in vias[1:]:
            request.headers.add("Via", other)
    return via


def response_target(via: Via, transport: str) -> SipTarget:
    """Where an unreliable-transport response goes per RFC 3261 §18.2.2 and RFC 3581 §4.

    ``received`` (and the filled ``rport``) win over the sent-by so that responses cross NAT;
    ``maddr`` multicast is not supported.
    """
    host = via.received or via.host.strip("[]")
    port = via.rport or via.port or _DEFAULT_PORT
    return SipTarget(host, port, transport)


def next_hop(uri: str, fallback: SipTarget) -> SipTarget:
    """The address an in-dialog request is sent to: the first Route or the remote target URI.

    Without DNS support a hostname cannot be resolved, so such URIs (and non-SIP ones) fall back
    to the trunk the call was placed through, which is where a trunk expects them anyway. A URI
    without ``transport=`` keeps the call's transport: a trunk reached over TCP usually omits it.
    """
    try:
        parsed = SipUri.parse(uri)
    except SipParseError:
        return fallback
    if not is_ip_literal(parsed.host):
        return fallback
    transport = "tls" if parsed.scheme == "sips" else parsed.transport or fallback.transport
    if transport not in TRANSPORTS:
        return fallback
    default_port = _DEFAULT_TLS_PORT if transport == "tls" else _DEFAULT_PORT
    return SipTarget(parsed.host.strip("[]"), parsed.port or default_port, transport)


def refresh_delay(granted: int) -> float:
    """Seconds after a successful REGISTER to refresh it, safely before the binding expires.

    Half the interval for short bindings, otherwise 30 s early: enough for a retransmitted
    REGISTER to complete (64*T1 is 32 s only when every try is lost) without hammering the
    registrar.
    """
    return max(granted / 2, granted - 30.0, 1.0) if granted > 1 else 1.0


def granted_expires(response: SipResponse, contact_uri: str, requested: int) -> int:
    """The binding lifetime a registrar granted (RFC 3261 §10.2.4).

    The ``expires`` parameter of our own Contact in the 2xx wins, then the Expires header, then
    what we asked for. Contacts are compared by user, host and port, since registrars may
    re-order or drop URI parameters.
    """
    try:
        ours = SipUri.parse(contact_uri)
        ours_key = (ours.user, ours.host.lower(), ours.port or _DEFAULT_PORT)
        for contact in response.contacts:
            value = contact.params.get("expires")
            if value is None or not value.isdigit():
                continue
            theirs = contact.sip_uri()
            if (theirs.user, theirs.host.lower(), theirs.port or _DEFAULT_PORT) == ours_key:
                return int(value)
    except SipParseError:
        pass
    header = response.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return requested


def header_summary(headers: Headers) -> dict[str, str]:
    """Headers as a plain dict for listeners: repeated fields are joined with ", " (RFC 3261 §7.3)."""
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
