"""The process-wide media clock: one timer that drives every call's 20 ms playout.

A timer per call per frame would cost one event-loop wake-up per call every 20 ms and let calls
drift apart; one timer for all calls costs one wake-up per 20 ms however many calls there are, and
keeps every leg of a bridge on the same beat. Deadlines are absolute (``start + n * interval``), so
a late tick does not push the following ones later and the clock never drifts. When the loop has
fallen more than a few intervals behind (a GC pause, a blocked callback), the missed ticks are
skipped and counted instead of being run back to back: a burst of frames would only overflow the
far end's jitter buffer.

The loop only looks at its timers between passes, and one pass can run hundreds of I/O callbacks
(every RTP packet and agent message that arrived while the last pass ran), so under load a tick
due in the middle of a pass used to wait for the whole pass: measured with bench/ai.py at 250
calls, p99 lateness of 20-60 ms while the core was still 10% idle. The media path's I/O handlers
therefore call :meth:`MediaClock.poll` as each datagram or message comes in, and a tick that has
come due runs right there, between two callbacks. That needs a clock read fresh at every call, which uvloop's
``loop.time()`` is not (it is taken once per pass), so the clock keeps its own timebase,
``time.monotonic`` by default, and the sessions it drives stamp their packets with it too.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from array import array
from collections.abc import Callable
from time import monotonic
from typing import Protocol

log = logging.getLogger(__name__)


class Participant(Protocol):
    def tick(self, now: float) -> None:
        """Do one interval's work; ``now`` is the clock's time (:attr:`MediaClock.now`) at which the
        tick actually runs."""


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


class Deadline:
    """A callback the clock runs at its first firing at or after ``when`` (see :meth:`MediaClock.call_at`)."""

    __slots__ = ("when", "callback")

    def __init__(self, when: float, callback: Callable[[float], None]) -> None:
        self.when = when
        self.callback: Callable[[float], None] | None = callback

    def cancel(self) -> None:
        """Drop the callback (and whatever it holds) at once; the empty entry leaves the clock's heap
        when its time comes."""
        self.callback = None


class MediaClock:
    """Calls every registered participant's ``tick(now)`` once per interval.

    Participants are spread over ``phases`` moments evenly spaced across the interval, each joining
    the phase with the fewest members; within a phase they tick in registration order. Why phases:
    measured with bench/ai.py, ticking 250 calls at one instant sends 250 packets in one burst, the
    far ends answer in one burst, and the loop is busy in a single lump long enough to make the next
    tick late; in four phases the same work comes in four lumps with room between them, and the
    carrier is not sent a burst either. Every participant still ticks exactly once per interval.

    The timer runs only while there are participants (and fires only for phases that have some), so
    an idle process does not wake up 50 times a second. Participants may be added or removed at any
    time, including from inside a tick: one added during a tick is ticked from its phase's next
    firing on, one removed before its turn is not ticked. An exception from one participant is logged
    and does not affect the others or the clock.

    Per-call deadlines far coarser than a frame (a media timeout) ride the same firings through
    :meth:`call_at`: one heap for all calls, so a firing costs one comparison while nothing is due,
    instead of a timer per call on the loop or a scan of every call.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        interval: float = 0.020,
        *,
        phases: int = 1,
        max_lag_ticks: int = 3,
        lateness_capacity: int = 4096,
        timer: Callable[[], float] = monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if phases < 1:
            raise ValueError("phases must be at least 1")
        self.interval = interval
        self.phases = phases
        self.now = timer
        """The clock's timebase (seconds, read fresh at every call); participants use it for their
        own timestamps so that ``tick(now)`` and the times they recorded compare."""
        self.max_lag_ticks = max_lag_ticks
        self.ticks = 0
        """Intervals completed (every phase has had its turn)."""
        self.skipped = 0
        """Intervals skipped because the loop had fallen too far behind."""
        self.errors = 0
        self.lateness = LatenessRecorder(lateness_capacity)
        self._loop = loop
        self._step = interval / phases
        self._phase_of: dict[Participant, int] = {}
        self._phase_members: list[dict[Participant, None]] = [{} for _ in range(phases)]
        self._order: list[tuple[Participant, ...]] = [() for _ in range(phases)]
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._due = 0.0  # when the firing at _index is due, while the timer runs
        self._index = 0  # the firing running now or due next: phase index % phases of interval index // phases
        self._ticking = False
        self._deadlines: list[tuple[float, int, Deadline]] = []
        self._deadline_seq = itertools.count()

    @property
    def running(self) -> bool:
        return self._handle is not None

    def __len__(self) -> int:
        return len(self._phase_of)

    def __contains__(self, participant: object) -> bool:
        return participant in self._phase_of

    def add(self, participant: Participant) -> None:
        """Register a participant, starting the timer if it was idle (needs a running loop then)."""
        if participant in self._phase_of:
            return
        phase = min(range(self.phases), key=lambda p: len(self._phase_members[p]))
        self._phase_of[participant] = phase
        self._phase_members[phase][participant] = None
        self._order[phase] = tuple(self._phase_members[phase])
        if self._handle is None and not self._ticking:
            self._begin()

    def remove(self, participant: Participant) -> None:
        phase = self._phase_of.pop(participant, None)
        if phase is None:
            return
        del self._phase_members[phase][participant]
        self._order[phase] = tuple(self._phase_members[phase])
        if not self._phase_of and self._handle is not None and not self._ticking:
            self._handle.cancel()
            self._handle = None

    @property
    def slot(self) -> int:
        """The number of the interval whose tick is running now, or else of the next one due.
        Intervals are numbered from the clock's creation and never reuse a number, even across idle
        periods."""
        return self._index // self.phases

    def slot_at(self, when: float, participant: Participant) -> int:
        """The number of ``participant``'s first tick due at or after ``when`` (clock time); a tick that
        is running late counts as past once its deadline is, so work done ahead of it belongs to the
        next one."""
        phase = self._phase_of.get(participant, 0)
        due = math.ceil((when - self._start - phase * self._step) / self.interval - 1e-9)
        return max(self._index // self.phases, due)

    def call_at(self, when: float, callback: Callable[[float], None]) -> Deadline:
        """Run ``callback(now)`` at the first firing at or after ``when`` (clock time), so within an
        interval of it while the clock runs; the clock runs only while it has participants, so a
        deadline is for work about one of them."""
        deadline = Deadline(when, callback)
        heapq.heappush(self._deadlines, (when, next(self._deadline_seq), deadline))
        return deadline

    def _run_deadlines(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline = heapq.heappop(deadlines)[2]
            callback, deadline.callback = deadline.callback, None
            if callback is None:
                continue
            try:
                callback(now)
            except Exception:
                self.errors += 1
                log.exception("media clock deadline %r failed", callback)

    def _begin(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        # Numbering carries on from before the idle period: slot numbers handed out then stay in the past.
        now = self.now()
        self._start = now + self._step - self._index * self._step
        self._index = self._next_busy(self._index)
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        """Arm the timer for the firing at ``_index``. The delay is taken from our own fresh clock:
        uvloop's ``call_at`` would measure it from the time cached at the start of the loop pass."""
        assert self._loop is not None
        self._due = self._start + self._index * self._step
        self._handle = self._loop.call_later(max(0.0, self._due - now), self._fire)

    def poll(self) -> None:
        """Run the next firing now if it has come due. Cheap enough to call after every packet: one
        clock read and a comparison while nothing is due."""
        handle = self._handle
        if handle is not None and not self._ticking and self.now() >= self._due:
            handle.cancel()
            self._fire()

    def _next_busy(self, index: int) -> int:
        """The first firing at or after ``index`` whose phase has participants."""
        for offset in range(self.phases):
            if self._order[(index + offset) % self.phases]:
                return index + offset
        return index

    def _fire(self) -> None:
        index = self._index
        now = self.now()
        self.lateness.record(now - self._due)
        members = self._phase_members[index % self.phases]
        self._ticking = True
        try:
            for participant in self._order[index % self.phases]:
                if participant not in members:
                    continue
                try:
                    participant.tick(now)
                except Exception:
                    self.errors += 1
                    log.exception("media clock participant %r failed", participant)
            deadlines = self._deadlines
            if deadlines and deadlines[0][0] <= now:
                self._run_deadlines(now)
        finally:
            self._ticking = False
        if not self._phase_of:
            self._index = index + 1
            self.ticks += 1
            self._handle = None
            return
        step = self._step
        following = index + 1
        now = self.now()
        behind = now - (self._start + following * step)
        if behind > self.max_lag_ticks * self.interval:
            missed = int(behind // self.interval)  # whole intervals, so every phase keeps its place
            self.skipped += missed
            following += missed * self.phases
        following = self._next_busy(following)
        self.ticks += following // self.phases - index // self.phases
        self._index = following
        self._schedule(now)
