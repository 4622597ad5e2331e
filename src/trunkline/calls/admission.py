"""Admission control: whether a call may start now, per tenant and per trunk (PROTOCOL.md §6 "Admission").

Pure objects over a clock the caller hands in, so the rules are exact and testable, and so the
cluster wave can replace :class:`Admission` behind the same ``try_admit`` / ``release`` (SCALE.md):

- :class:`TokenBucket` — calls per second. It holds at most one second of tokens, so a pause (or a
  stalled event loop) never banks a burst: with ``cps = 10``, a burst of 100 requests gets exactly 10
  in the first second, then 10 more each second.
- concurrency — calls up at once, counted on admit and released when the call ends.
- :class:`CircuitBreaker` — a trunk whose calls keep failing for trunk reasons (408, 5xx, no
  answer, transport errors, failed keepalives) is opened after ``failures`` of them within
  ``window_s``; while open, calls are refused at once instead of piling onto a sick carrier. After
  ``open_s`` one probe is let through (half-open): success closes it, failure re-opens it for twice
  as long (up to ``max_open_s``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from trunkline.enums import ErrorCode


class TokenBucket:
    __slots__ = ("rate", "capacity", "tokens", "_last")

    def __init__(self, rate: float, now: float, burst_s: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate * burst_s)
        self.tokens = self.capacity
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = max(self._last, now)

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0 if one is): how long a campaign sleeps before its next start."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, failures: int = 5, window_s: float = 30.0, open_s: float = 30.0, max_open_s: float = 600.0) -> None:
        self.failures = failures
        self.window_s = window_s
        self.base_open_s = open_s
        self.max_open_s = max_open_s
        self.open_s = open_s
        self.state = self.CLOSED
        self._recent: deque[float] = deque()
        self._opened_at = 0.0
        self._probing = False

    def allow(self, now: float) -> bool:
        """May a call (or the probe) go to the trunk now?"""
        if self.state == self.OPEN and now - self._opened_at >= self.open_s:
            self.state = self.HALF_OPEN
            self._probing = False
        if self.state == self.CLOSED:
            return True
        if self.state == self.HALF_OPEN and not self._probing:
            self._probing = True  # exactly one probe until its outcome is known
            return True
        return False

    def record_success(self, now: float) -> None:
        if self.state == self.HALF_OPEN:
            self.state, self.open_s = self.CLOSED, self.base_open_s
        self._recent.clear()

    def record_failure(self, now: float) -> None:
        if self.state == self.HALF_OPEN:
            self._open(now, min(self.max_open_s, self.open_s * 2))
            return
        if self.state == self.OPEN:
            return
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        if len(recent) >= self.failures:
            self._open(now, self.open_s)

    def _open(self, now: float, open_s: float) -> None:
        self.state, self._opened_at, self.open_s, self._probing = self.OPEN, now, open_s, False
        self._recent.clear()


@dataclass(frozen=True, slots=True)
class Limits:
    """One tenant's or trunk's limits; 0 means no limit."""

    cps: float = 0.0
    max_concurrent: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    code: ErrorCode
    message: str


class _Counter:
    __slots__ = ("limits", "bucket", "active")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.bucket = TokenBucket(limits.cps, now) if limits.cps > 0 else None
        self.active = 0


class Admission:
    """Every call start asks :meth:`try_admit`; every admitted call's end calls :meth:`release`."""

    def __init__(self, tenants: dict[str, Limits], trunks: dict[str, Limits],
                 breakers: dict[str, CircuitBreaker] | None = None, now: float = 0.0) -> None:
        self._tenants = {name: _Counter(limits, now) for name, limits in tenants.items()}
        self._trunks = {name: _Counter(limits, now) for name, limits in trunks.items()}
        self.breakers = breakers or {}

    def try_admit(self, tenant_id: str, trunk_id: str, now: float) -> Refusal | None:
        """None when the call may start (and is counted); otherwise the refusal, with nothing counted."""
        tenant, trunk = self._tenants.get(tenant_id), self._trunks.get(trunk_id)
        for who, name, counter in (("tenant", tenant_id, tenant), ("trunk", trunk_id, trunk)):
            if counter is not None and counter.limits.max_concurrent and counter.active >= counter.limits.max_concurrent:
                return Refusal(ErrorCode.ERR_RATE_LIMITED,
                               f"{who} {name!r} is at max_concurrent={counter.limits.max_concurrent}")
        for who, name, counter in (("tenant", tenant_id, tenant), ("trunk", trunk_id, trunk)):
            bucket = counter.bucket if counter is not None else None
            if bucket is not None and bucket.wait(now) > 0:
                return Refusal(ErrorCode.ERR_RATE_LIMITED, f"{who} {name!r} is over its cps={counter.limits.cps:g}")
        breaker = self.breakers.get(trunk_id)  # last: a half-open breaker's one probe is spent only on a call that starts
        if breaker is not None and not breaker.allow(now):
            return Refusal(ErrorCode.ERR_CIRCUIT_BREAKER, f"trunk {trunk_id!r} is failing; its circuit breaker is open")
        for counter in (tenant, trunk):
            if counter is not None:
                if counter.bucket is not None:
                    counter.bucket.take(now)
                counter.active += 1
        return None

    def release(self, tenant_id: str, trunk_id: str) -> None:
        for counter in (self._tenants.get(tenant_id), self._trunks.get(trunk_id)):
            if counter is not None and counter.active > 0:
                counter.active -= 1

    def active(self, tenant_id: str = "", trunk_id: str = "") -> int:
        counter = self._tenants.get(tenant_id) if tenant_id else self._trunks.get(trunk_id)
        return counter.active if counter is not None else 0
