"""Concurrent answered calls with RTP both ways: CPU per call and media-clock lateness.

N calls are placed through the gateway (in this process) to a SIPp UAS that echoes RTP; each plays
hold music, so every call sends and receives 50 packets a second. Once all are up the script
measures for a fixed time: process CPU per call (a percentage of one core), and the media clock's
tick lateness p50/p99/max, beside a floor measured in the same run: the same clock ticking with no
calls. Traffic stays on 127.0.0.1; the run is bounded and hangs everything up at the end.

    python bench/calls.py [--calls 100,200,300] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio

from _harness import carrier, cpu, gateway_for, run

from trunkline.enums import DialplanAction
from trunkline.media_engine.clock import LatenessRecorder, MediaClock


class Idle:
    def tick(self, now: float) -> None:
        pass


async def floor_lateness(seconds: float) -> tuple[float, float]:
    clock, idle = MediaClock(), Idle()
    clock.add(idle)
    await asyncio.sleep(seconds)
    clock.remove(idle)
    return clock.lateness.percentile(50), clock.lateness.percentile(99)


async def hold(gateway, outcomes, n: int, seconds: float) -> tuple[float, float, float, float, int]:
    answered_before = outcomes.answered
    sids = []
    for _ in range(n):
        sids.append(gateway.calls.originate("local", "carrier", to="+15551234567",
                                            default_app=DialplanAction.MUSIC_ON_HOLD).sid)
        await asyncio.sleep(0.004)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while outcomes.answered - answered_before < n and loop.time() < deadline:
        await asyncio.sleep(0.1)
    up = outcomes.answered - answered_before
    await asyncio.sleep(1.0)  # let jitter buffers settle
    gateway.media_clock.lateness = LatenessRecorder(4096)
    start_cpu, start = cpu(), loop.time()
    await asyncio.sleep(seconds)
    busy = (cpu() - start_cpu) / (loop.time() - start)
    lateness = gateway.media_clock.lateness
    p50, p99, worst = lateness.percentile(50), lateness.percentile(99), lateness.max
    for sid in sids:
        try:
            gateway.calls.terminate("local", sid)
        except Exception:  # noqa: BLE001 - already ended
            pass
    while gateway.calls.active_calls("local") and loop.time() < deadline + 30:
        await asyncio.sleep(0.1)
    return busy / max(1, up) * 100, p50 * 1000, p99 * 1000, worst * 1000, up


async def main(counts: list[int], seconds: float) -> None:
    f50, f99 = await floor_lateness(seconds)
    print(f"floor (clock alone): lateness p50 {f50 * 1000:.2f} ms, p99 {f99 * 1000:.2f} ms")
    sipp = carrier("uas_answer", rtp_echo=True)
    gateway, outcomes = await gateway_for(sipp.port, max_concurrent=100_000)
    print(f"{'calls':>6} {'up':>5} {'CPU %core/call':>15} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    try:
        for n in counts:
            per_call, p50, p99, worst, up = await hold(gateway, outcomes, n, seconds)
            print(f"{n:>6} {up:>5} {per_call:>15.3f} {p50:>7.2f} {p99:>7.2f} {worst:>7.2f}", flush=True)
            if per_call:
                print(f"        -> about {100 / per_call:.0f} calls per core at this load (goal >= 500 with p99 <= 5 ms)")
    finally:
        await gateway.close()
        sipp.kill()
        sipp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="100,200,300")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    run(main([int(c) for c in args.calls.split(",")], args.seconds))
