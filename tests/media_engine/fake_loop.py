"""A stand-in event loop for driving the media clock by hand: a settable time and ordered timers."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just enough of an event loop for the clock: a settable time and ordered timers."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.scheduled: list[float] = []
        self._timers: list[tuple[float, int, FakeHandle, Callable[[], Any]]] = []
        self._seq = 0

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], Any]) -> FakeHandle:
        return self.call_at(self.now + delay, callback)

    def call_at(self, when: float, callback: Callable[[], Any]) -> FakeHandle:
        handle = FakeHandle()
        self._seq += 1
        self.scheduled.append(when)
        heapq.heappush(self._timers, (when, self._seq, handle, callback))
        return handle

    @property
    def pending(self) -> int:
        return sum(not h.cancelled for _, _, h, _ in self._timers)

    def run_next(self, delay: float = 0.0) -> None:
        """Fire the earliest live timer ``delay`` seconds after it was due (or now, if later)."""
        while True:
            when, _, handle, callback = heapq.heappop(self._timers)
            if not handle.cancelled:
                break
        self.now = max(self.now, when + delay)
        callback()
