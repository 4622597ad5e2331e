"""MediaClock against a fake loop (exact deadlines, no waiting) and, briefly, the real one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest

from tests.media_engine.fake_loop import FakeLoop
from trunkline.media_engine.clock import LatenessRecorder, MediaClock


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, float]], action: Callable[[], None] | None = None) -> None:
        self.name = name
        self.log = log
        self.action = action

    def tick(self, now: float) -> None:
        self.log.append((self.name, now))
        if self.action is not None:
            self.action()


def make_clock(loop: FakeLoop, **kwargs: Any) -> MediaClock:
    return MediaClock(cast(asyncio.AbstractEventLoop, loop), timer=loop.time, **kwargs)


def test_ticks_every_participant_once_in_registration_order():
    loop = FakeLoop()
    clock = make_clock(loop)
    log: list[tuple[str, float]] = []
    for name in "abc":
        clock.add(Recorder(name, log))
    for _ in range(3):
        loop.run_next()
    assert [n for n, _ in log] == list("abcabcabc")
    assert clock.ticks == 3


def test_deadlines_are_absolute_so_late_ticks_do_not_drift():
    loop = FakeLoop(now=10.0)
    clock = make_clock(loop, interval=0.02)
    clock.add(Recorder("a", []))
    for _ in range(5):
        loop.run_next(delay=0.005)  # every tick fires 5 ms late
    assert loop.scheduled == pytest.approx([10.02 + 0.02 * k for k in range(6)])
    assert clock.lateness.percentile(50) == pytest.approx(0.005)
    assert clock.lateness.max == pytest.approx(0.005)
    assert clock.skipped == 0


def test_falling_far_behind_skips_ahead_instead_of_bursting():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02, max_lag_ticks=3)
    log: list[tuple[str, float]] = []
    clock.add(Recorder("a", log))
    loop.run_next()  # due at 0.02, on time
    loop.run_next(delay=0.205)  # due at 0.04, runs at 0.245: ten intervals late
    # The next deadline would be 0.06, 9.25 intervals in the past: those 9 ticks are skipped, and
    # the one due at 0.24 (already past too) runs at once.
    assert clock.skipped == 9
    assert loop.scheduled[-1] == pytest.approx(0.245)
    loop.run_next()
    assert len(log) == 3  # no burst of catch-up ticks
    assert clock.lateness.max == pytest.approx(0.205)
    assert log[-1][1] == pytest.approx(0.245)


def test_a_small_lag_is_caught_up_rather_than_skipped():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02, max_lag_ticks=3)
    clock.add(Recorder("a", []))
    loop.run_next(delay=0.05)  # 2.5 intervals late: within the allowed lag
    assert clock.skipped == 0
    loop.run_next()  # the tick due at 0.04 runs at once, still 0.07
    assert clock.lateness.max == pytest.approx(0.05)
    assert clock.lateness.percentile(0) == pytest.approx(0.03)


def test_poll_runs_a_due_tick_between_io_callbacks_and_only_then():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02)
    log: list[tuple[str, float]] = []
    clock.add(Recorder("a", log, action=clock.poll))  # a poll from inside a tick must not recurse
    loop.now = 0.019
    clock.poll()
    assert log == []
    loop.now = 0.023  # due at 0.02; the loop is still busy with I/O, its timer has not run
    clock.poll()
    assert log == [("a", 0.023)]
    assert clock.lateness.max == pytest.approx(0.003)
    assert loop.pending == 1 and loop.scheduled[-1] == pytest.approx(0.04)  # the old timer was cancelled
    clock.poll()
    assert len(log) == 1
    loop.run_next()
    assert log[-1] == ("a", pytest.approx(0.04))


def test_participants_added_or_removed_during_a_tick():
    loop = FakeLoop()
    clock = make_clock(loop)
    log: list[tuple[str, float]] = []
    late = Recorder("late", log)
    victim = Recorder("victim", log)

    def churn() -> None:
        clock.add(late)
        clock.remove(victim)

    clock.add(Recorder("first", log, churn))
    clock.add(victim)
    loop.run_next()
    assert [n for n, _ in log] == ["first"]  # victim removed before its turn; late joins next tick
    loop.run_next()
    assert [n for n, _ in log[1:]] == ["first", "late"]
    assert victim not in clock and late in clock


def test_a_failing_participant_is_logged_and_does_not_stop_the_others(caplog):
    loop = FakeLoop()
    clock = make_clock(loop)
    log: list[tuple[str, float]] = []

    def boom() -> None:
        raise RuntimeError("boom")

    clock.add(Recorder("bad", log, boom))
    clock.add(Recorder("good", log))
    with caplog.at_level(logging.ERROR, logger="trunkline.media_engine.clock"):
        loop.run_next()
        loop.run_next()
    assert [n for n, _ in log] == ["bad", "good", "bad", "good"]
    assert clock.errors == 2
    assert "boom" in caplog.text


def test_timer_runs_only_while_there_are_participants():
    loop = FakeLoop()
    clock = make_clock(loop)
    assert not clock.running
    p = Recorder("a", [])
    clock.add(p)
    assert clock.running and loop.pending == 1
    clock.remove(p)
    assert not clock.running and loop.pending == 0
    # The last participant leaving from inside its own tick stops the timer too.
    leaver = Recorder("self-removing", [], lambda: clock.remove(leaver))
    clock.add(leaver)
    loop.run_next()
    assert not clock.running and loop.pending == 0


def test_slots_number_ticks_and_work_done_ahead_of_a_late_tick_belongs_to_the_next():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02)
    seen: list[int] = []
    p = Recorder("a", [], lambda: seen.append(clock.slot))
    clock.add(p)
    assert clock.slot_at(0.005, p) == clock.slot  # before the first deadline: the first tick's slot
    loop.run_next()
    loop.run_next()
    assert seen == [seen[0], seen[0] + 1]
    nxt = clock.slot  # due at 0.06
    assert clock.slot_at(0.05, p) == nxt
    assert clock.slot_at(0.065, p) == nxt + 1  # its tick is late: that slot is past
    # Across an idle period numbering carries on, so a slot handed out before is never reused.
    clock.remove(p)
    loop.now = 5.0
    clock.add(p)
    loop.run_next()
    assert seen[-1] >= nxt and loop.scheduled[-2] == pytest.approx(5.02)


def test_phases_spread_participants_across_the_interval_and_each_ticks_once_per_interval():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02, phases=4)
    log: list[tuple[str, float]] = []
    recorders = [Recorder(name, log) for name in "abcdef"]
    for recorder in recorders:
        clock.add(recorder)
    for _ in range(8):  # two intervals' worth of firings
        loop.run_next()
    assert clock.ticks == 2
    assert sorted(n for n, _ in log) == sorted("abcdef" * 2)
    # a, e share the first phase; b, f the second; c and d have one each: firings 5 ms apart.
    assert [n for n, _ in log[:6]] == ["a", "e", "b", "f", "c", "d"]
    assert loop.scheduled[:5] == pytest.approx([0.005, 0.010, 0.015, 0.020, 0.025])
    per_name = {name: [t for n, t in log if n == name] for name in "abcdef"}
    assert all(times[1] - times[0] == pytest.approx(0.02) for times in per_name.values())


def test_empty_phases_cost_no_wake_ups_and_a_slot_is_per_phase():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02, phases=4)
    early, late = Recorder("early", []), Recorder("late", [])
    clock.add(early)
    clock.add(late)
    clock.remove(early)  # phase 0 empties: only phase 1 fires, once per interval
    for _ in range(3):
        loop.run_next()
    assert loop.scheduled == pytest.approx([0.005, 0.010, 0.030, 0.050])
    assert clock.ticks == 2  # late ticked at 0.010 and 0.030; the 0.005 firing was already due
    assert clock.slot_at(0.045, late) == clock.slot  # its 0.050 tick is still ahead
    assert clock.slot_at(0.055, late) == clock.slot + 1  # that tick is late: work now is for 0.070


def test_lateness_recorder_percentiles_and_ring():
    rec = LatenessRecorder(capacity=100)
    assert rec.percentile(99) == 0.0
    for i in range(1, 201):  # only the last 100 samples (101..200) are kept; max is all-time
        rec.record(i / 1000)
    assert rec.percentile(50) == pytest.approx(0.150)
    assert rec.percentile(99) == pytest.approx(0.199)
    assert rec.percentile(100) == pytest.approx(0.200)
    assert rec.max == pytest.approx(0.200)
    assert rec.count == 200
    with pytest.raises(ValueError):
        rec.percentile(101)


async def test_real_loop_ticks_in_order_and_stops_when_empty():
    clock = MediaClock(interval=0.005)
    log: list[tuple[str, float]] = []
    done = asyncio.get_running_loop().create_future()

    def stop_after_five() -> None:
        if len(log) == 10:
            clock.remove(a)
            clock.remove(b)
            done.set_result(None)

    a = Recorder("a", log)
    b = Recorder("b", log, stop_after_five)
    clock.add(a)
    clock.add(b)
    await asyncio.wait_for(done, 5)
    assert [n for n, _ in log] == list("ab" * 5)
    times = [t for _, t in log[::2]]
    assert times == sorted(times)
    assert not clock.running


def test_call_at_runs_due_callbacks_in_deadline_order_at_the_next_firing():
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02)
    clock.add(Recorder("a", []))
    ran: list[tuple[str, float]] = []
    clock.call_at(0.05, lambda now: ran.append(("late", now)))
    clock.call_at(0.03, lambda now: ran.append(("early", now)))
    dropped = clock.call_at(0.01, lambda now: ran.append(("cancelled", now)))
    dropped.cancel()
    assert dropped.callback is None  # a cancelled deadline holds nothing of its owner
    loop.run_next()  # 0.02
    assert ran == []
    loop.run_next()  # 0.04
    assert ran == [("early", pytest.approx(0.04))]
    loop.run_next()  # 0.06
    assert ran == [("early", pytest.approx(0.04)), ("late", pytest.approx(0.06))]
    assert clock._deadlines == []


def test_a_failing_deadline_is_logged_and_the_others_still_run(caplog):
    loop = FakeLoop(now=0.0)
    clock = make_clock(loop, interval=0.02)
    clock.add(Recorder("a", []))
    ran: list[float] = []
    clock.call_at(0.01, lambda now: 1 / 0)
    clock.call_at(0.01, ran.append)
    with caplog.at_level(logging.ERROR):
        loop.run_next()
    assert ran == [pytest.approx(0.02)] and clock.errors == 1
    assert "deadline" in caplog.text
