"""REFER as the referrer sees it (RFC 3515): the implicit subscription and the transfer's outcome.

A REFER asks the far end to call the Refer-To target. The far end answers the REFER (202), then
reports how that new call goes in NOTIFYs (``Event: refer``) whose ``message/sipfrag`` body
(RFC 3420) starts with the status line of the new call's latest response (RFC 3515 §2.4.5). This
module folds the REFER's final status and those NOTIFYs into one :class:`ReferOutcome`, without
I/O: the caller hands in statuses, header values, bodies and the time, answers each NOTIFY with the
status returned, and calls :meth:`ReferSubscription.expire` when :attr:`~ReferSubscription.deadline`
passes, so a peer that never reports cannot leave a transfer pending for ever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .message import SipParseError, parse_params

__all__ = [
    "ReferOutcome",
    "ReferSubscription",
    "SubscriptionState",
    "parse_event",
    "parse_sipfrag_status",
    "parse_subscription_state",
]

NO_EXPIRES_WAIT_S = 180.0
"""How long a NOTIFY without ``expires`` keeps the subscription alive: about as long as the new
call the transferee places may ring."""

MAX_WAIT_S = 3600.0
"""Cap on any ``expires`` a peer announces."""

_STATUS_LINE = re.compile(r"SIP/2\.0[ \t]+([1-6][0-9]{2})(?:[ \t]+([^\r\n]*))?")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """A ``Subscription-State`` value (RFC 6665 §8.2.3): ``active``, ``pending`` or ``terminated``."""

    state: str
    params: dict[str, str | None]

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def reason(self) -> str | None:
        return self.params.get("reason")


def _token_and_params(value: str, header: str) -> tuple[str, dict[str, str | None]]:
    token, sep, rest = value.strip().partition(";")
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise SipParseError(f"{header}: bad value {value[:40]!r}")
    return token.lower(), parse_params(sep + rest)


def parse_subscription_state(value: str) -> SubscriptionState:
    """``active;expires=60`` -> SubscriptionState("active", {"expires": "60"}); SipParseError if malformed."""
    state, params = _token_and_params(value, "Subscription-State")
    return SubscriptionState(state, params)


def parse_event(value: str) -> tuple[str, dict[str, str | None]]:
    """``refer;id=93`` -> ("refer", {"id": "93"}); the package name is lower-cased."""
    return _token_and_params(value, "Event")


def parse_sipfrag_status(body: bytes) -> tuple[int, str] | None:
    """The status and reason of a sipfrag whose first line is a status line, else None."""
    first = body.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    match = _STATUS_LINE.fullmatch(first)
    if match is None:
        return None
    return int(match.group(1)), (match.group(2) or "").strip()


@dataclass(frozen=True, slots=True)
class ReferOutcome:
    """How a transfer ended: ``status`` is the new call's final status from the sipfrag, the REFER's
    own failure status, or 408 when the subscription lapsed without a final report."""

    succeeded: bool
    status: int
    reason: str


class ReferSubscription:
    """One REFER we sent and the subscription it creates; create it when the REFER goes out, since
    a NOTIFY may overtake the 202.

    ``t1`` is the transaction timer T1: after the 202, the first NOTIFY must come within 64*T1 (what
    RFC 6665 allows any new subscription); after each NOTIFY the subscription lives as long as its
    ``expires`` says (:data:`NO_EXPIRES_WAIT_S` when it says nothing).
    """

    def __init__(self, t1: float = 0.5) -> None:
        self.t1 = t1
        self.outcome: ReferOutcome | None = None
        self.deadline: float | None = None
        self.last_progress: tuple[int, str] | None = None
        self._notified = False

    def refer_answered(self, status: int, now: float) -> None:
        """The REFER's final status (408 for no answer, 503 for a transport failure)."""
        if self.outcome is not None:
            return
        if 200 <= status < 300:
            if not self._notified:
                self.deadline = now + 64 * self.t1
        else:
            self._finish(False, status, f"the REFER was answered {status}")

    def receive_notify(self, event: str | None, subscription_state: str | None, content_type: str,
                       body: bytes, now: float) -> int:
        """Take a NOTIFY in the REFER's dialog; returns the status to answer it with."""
        if event is None:
            return 400
        try:
            package, _ = parse_event(event)
            state = parse_subscription_state(subscription_state) if subscription_state else None
        except SipParseError:
            return 400
        if package != "refer":
            return 489
        self._notified = True
        if self.outcome is not None:
            return 200  # a report after the outcome (e.g. the final "terminated") changes nothing
        frag = parse_sipfrag_status(body) if content_type.lower().startswith("message/sipfrag") else None
        if frag is not None:
            status, reason = frag
            if status >= 200:
                self._finish(status < 300, status, f"{status} {reason}".strip())
                return 200
            self.last_progress = frag
        if state is not None and state.state == "terminated":
            reason = f"the subscription ended ({state.reason or 'no reason'}) without a final report"
            if self.last_progress is not None:
                reason += f"; last report {self.last_progress[0]} {self.last_progress[1]}".rstrip()
            self._finish(False, 408, reason)
        else:
            expires = state.expires if state is not None else None
            self.deadline = now + min(float(expires) if expires is not None else NO_EXPIRES_WAIT_S, MAX_WAIT_S)
        return 200

    def expire(self, now: float) -> ReferOutcome | None:
        """Give up once the deadline has passed with no outcome; returns the outcome, if any."""
        if self.outcome is None and self.deadline is not None and now >= self.deadline:
            missing = "final NOTIFY" if self._notified else "NOTIFY"
            self._finish(False, 408, f"no {missing} before the subscription lapsed")
        return self.outcome

    def _finish(self, succeeded: bool, status: int, reason: str) -> None:
        self.outcome = ReferOutcome(succeeded, status, reason)
        self.deadline = None
