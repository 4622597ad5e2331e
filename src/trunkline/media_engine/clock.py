"""The process-wide media clock: one timer that drives every call's 20 ms playout.

A timer per call per frame would cost one event-loop wake-up per call every 20 ms and let calls
drift apart; one timer for all calls costs one wake-up per 20 ms however many calls there are, and
keeps every leg of a bridge on the same beat. Deadlines are absolute (``start + n * interval``), so
a late tick does not push the following ones later and the clock never drifts. When the loop has
fallen more than a few intervals behind (a GC pause, a blocked callback), the missed ticks are
skipped and counted instead of being run back to back: a burst of frames would only overflow the
far end's jitter buffer.
"""

from __future__ import annotations

import asyncio
import logging
import math
from array import array
from typing import Protocol

log = logging.getLogger(__name__)


class Participant(Protocol):
    def tick(self, now: float) -> None:
        """Do one interval's work; ``now`` is the loop time at which the tick actually runs."""


class LatenessRecorder:
    """How late ticks ran, over the most recent ``capacity`` ticks, plus the all-time maximum.

    A fixed ring of floats: recording costs no allocation on the clock path, and percentiles are
    only computed when someone (a benchmark, a metrics scrape) asks.
    """

    __slots__ = ("capacity", "count", "max", "_ring")

    def __init__(self, capacity: int = 4096) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.count = 0
        self.max = 0.0
        self._ring = array("d", bytes(8 * capacity))

    def record(self, lateness: float) -> None:
        self._ring[self.count % self.capacity] = lateness
        self.count += 1
        if lateness > self.max:
            self.max = lateness

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile (0..100) of the retained samples; 0.0 before any tick."""
        if not 0.0 <= p <= 100.0:
            raise ValueError("percentile must be within 0..100")
        n = min(self.count, self.capacity)
        if n == 0:
            return 0.0
        ordered = sorted(self._ring[:n])
        return ordered[max(0, math.ceil(p / 100.0 * n) - 1)]


class MediaClock:
    """Calls every registered participant's ``tick(now)`` once per interval, in registration order.

    The timer runs only while there are participants, so an idle process does not wake up 50 times
    a second. Participants may be added or removed at any time, including from inside a tick: one
    added during a tick is first ticked on the next one, one removed before its turn is not ticked.
    An exception from one participant is logged and does not affect the others or the clock.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        interval: float = 0.020,
        *,
        max_lag_ticks: int = 3,
        lateness_capacity: int = 4096,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.max_lag_ticks = max_lag_ticks
        self.ticks = 0
        self.skipped = 0
        self.errors = 0
        self.lateness = LatenessRecorder(lateness_capacity)
        self._loop = loop
        self._members: dict[Participant, None] = {}
        self._order: tuple[Participant, ...] = ()
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._index = 0
        self._ticking = False

    @property
    def running(self) -> bool:
        return self._handle is not None

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, participant: object) -> bool:
        return participant in self._members

    def add(self, participant: Participant) -> None:
        """Register a participant, starting the timer if it was idle (needs a running loop then)."""
        if participant in self._members:
            return
        self._members[participant] = None
        self._order = tuple(self._members)
        if self._handle is None and not self._ticking:
            self._begin()

    def remove(self, participant: Participant) -> None:
        if participant not in self._members:
            return
        del self._members[participant]
        self._order = tuple(self._members)
        if not self._members and self._handle is not None and not self._ticking:
            self._handle.cancel()
            self._handle = None

    @property
    def slot(self) -> int:
        """The number of the tick running now, or else of the next one due. Ticks are numbered from
        the clock's creation and never reuse a number, even across idle periods."""
        return self._index

    def slot_at(self, when: float) -> int:
        """The number of the first tick due at or after loop time ``when``; a tick that is running
        late counts as past once its deadline is, so work done ahead of it belongs to the next one."""
        return max(self._index, math.ceil((when - self._start) / self.interval - 1e-9))

    def _begin(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        # Numbering carries on from before the idle period: slot numbers handed out then stay in the past.
        self._start = self._loop.time() + self.interval - self._index * self.interval
        self._handle = self._loop.call_at(self._start + self._index * self.interval, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        deadline = self._start + self._index * self.interval
        now = loop.time()
        self.lateness.record(now - deadline)
        self.ticks += 1
        members = self._members
        self._ticking = True
        try:
            for participant in self._order:
                if participant not in members:
                    continue
                try:
                    participant.tick(now)
                except Exception:
                    self.errors += 1
                    log.exception("media clock participant %r failed", participant)
        finally:
            self._ticking = False
        if not members:
            self._handle = None
            return
        self._index += 1
        behind = loop.time() - (self._start + self._index * self.interval)
        if behind > self.max_lag_ticks * self.interval:
            missed = int(behind // self.interval)
            self.skipped += missed
            self._index += missed
        self._handle = loop.call_at(self._start + self._index * self.interval, self._fire)
