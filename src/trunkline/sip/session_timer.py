"""RFC 4028 session timers as pure decisions: what to ask for, what was granted, what to answer.

A session timer is how a SIP dialog notices that the far end vanished without a BYE: one side
refreshes the session (a re-INVITE or UPDATE) every half interval, and the other ends the call
when no refresh came by the expiry. The engine keeps one timer per call and asks this module what
each request, response and refresh means, so the negotiation is tested without sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

from .message import Headers, SipRequest, SipResponse

__all__ = ["RFC_MIN_SE", "Session", "SessionTimers", "parse_session_expires"]

RFC_MIN_SE = 90
"""RFC 4028 §4's floor for Min-SE; :class:`SessionTimers` takes smaller values (tests use them)."""


@dataclass(frozen=True, slots=True)
class Session:
    """A negotiated session timer: its interval and whether we are the refresher."""

    interval: int
    we_refresh: bool

    @property
    def due_in(self) -> float:
        """Seconds from the last refresh to our next duty: refresh at half the interval (§7.4),
        or, when the peer refreshes, end the call at expiry minus min(32, interval/3) (§10)."""
        if self.we_refresh:
            return self.interval / 2
        return self.interval - min(32.0, self.interval / 3)


def parse_session_expires(value: str | None) -> tuple[int, str | None] | None:
    """``Session-Expires: 1800;refresher=uac`` -> (1800, "uac"); None when absent or malformed."""
    if not value:
        return None
    delta, *params = (part.strip() for part in value.split(";"))
    if not delta.isdigit():
        return None
    refresher = None
    for param in params:
        name, _, arg = param.partition("=")
        if name.strip().lower() == "refresher" and arg.strip().lower() in ("uac", "uas"):
            refresher = arg.strip().lower()
    return int(delta), refresher


def _has_option(headers: Headers, name: str, option: str) -> bool:
    return any(option == token.strip().lower()
               for value in headers.get_all(name) for token in value.split(","))


@dataclass(frozen=True, slots=True)
class SessionTimers:
    """Our session timer wishes: the interval we ask for and the shortest we accept (Min-SE)."""

    session_expires: int = 1800
    min_se: int = RFC_MIN_SE

    def request_headers(self, interval: int, refresher: str | None = None) -> list[tuple[str, str]]:
        """Headers of an INVITE or UPDATE we send; a refresh names the current refresher (§7.4)."""
        value = f"{interval};refresher={refresher}" if refresher else str(interval)
        return [("Supported", "timer"), ("Session-Expires", value), ("Min-SE", str(self.min_se))]

    def granted(self, response: SipResponse) -> Session | None:
        """The session timer a 2xx to our INVITE or UPDATE sets up (§7.2); None: no timer.

        An interval under our Min-SE is raised to it, so a peer cannot make us refresh in a
        tight loop or give up on it early.
        """
        parsed = parse_session_expires(response.headers.get("Session-Expires"))
        if parsed is None:
            return None
        interval, refresher = parsed
        return Session(max(interval, self.min_se), refresher != "uas")

    def retry_interval(self, response: SipResponse, current: int) -> int | None:
        """The larger interval a 422 asks for (§7.3), or None when it asks for nothing larger."""
        min_se = response.headers.get("Min-SE")
        if min_se is None or not min_se.split(";")[0].strip().isdigit():
            return None
        wanted = int(min_se.split(";")[0].strip())
        return wanted if wanted > current else None

    def answer(self, request: SipRequest) -> tuple[int, list[tuple[str, str]], Session | None]:
        """How to answer a peer's INVITE or UPDATE (§9): (status, headers, session).

        Status 422 (with our Min-SE) refuses an interval shorter than we accept; otherwise the 2xx
        carries these headers and the session starts or is refreshed. A request without
        Session-Expires still gets one with us as refresher (§9 lets the UAS insert it), so the
        dialog stays guarded whatever the peer supports.
        """
        headers = request.headers
        parsed = parse_session_expires(headers.get("Session-Expires"))
        if parsed is None:
            interval, refresher = self.session_expires, "uas"
        else:
            interval, refresher = parsed
            if interval < self.min_se:
                return 422, [("Min-SE", str(self.min_se))], None
            if refresher is None:
                refresher = "uac" if _has_option(headers, "Supported", "timer") else "uas"
        out = [("Session-Expires", f"{interval};refresher={refresher}")]
        if refresher == "uac":
            out.append(("Require", "timer"))
        return 200, out, Session(interval, refresher == "uas")
