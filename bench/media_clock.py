"""Media engine load: N call legs on one media clock, in pairs on 127.0.0.1, sending a tone both ways.

Every leg sends and receives 50 packets/s and decodes every inbound frame, as a real call does, so
the figures are the engine's full per-call cost: CPU per call (process time over wall time, so 1 %
means one call uses 1 % of a core) and microseconds per call per tick, plus how late the shared
20 ms tick ran (p50/p99/max) and how many ticks were skipped. Everything runs in this one process,
so the sending and receiving sides of each pair are both counted: the cost per leg is the figure.

    python bench/media_clock.py [--calls 200] [--seconds 5] [--loop uvloop|asyncio|both]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import time

from trunkline.media.sdp import NegotiatedMedia
from trunkline.media_engine import LatenessRecorder, MediaClock, MediaSession, RtpPortPool, Tone

WARMUP_SECONDS = 1.0


def negotiated(port: int) -> NegotiatedMedia:
    return NegotiatedMedia("PCMU", 0, 8000, 101, "127.0.0.1", port, "sendrecv", "sendrecv")


class FrameCounter:
    __slots__ = ("frames", "gaps")

    def __init__(self) -> None:
        self.frames = 0
        self.gaps = 0

    def __call__(self, pcm: bytes | None) -> None:
        if pcm is None:
            self.gaps += 1
        else:
            self.frames += 1


async def run(calls: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    clock = MediaClock()
    base = random.randrange(20000, 60000 - 2 * calls - 100, 2)
    pool = RtpPortPool("127.0.0.1", base, base + 2 * calls + 99)
    sessions = [await MediaSession.open(clock, pool) for _ in range(calls - calls % 2)]
    counters = []
    for a, b in zip(sessions[::2], sessions[1::2]):
        a.configure(negotiated(b.local_address[1]))
        b.configure(negotiated(a.local_address[1]))
    for session in sessions:
        counter = FrameCounter()
        counters.append(counter)
        session.on_audio = counter
        session.play(Tone(1000.0))
    await asyncio.sleep(WARMUP_SECONDS)
    clock.lateness = LatenessRecorder()
    ticks0, skipped0 = clock.ticks, clock.skipped
    frames0 = sum(c.frames for c in counters)
    cpu0, wall0 = time.process_time(), loop.time()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, loop.time() - wall0
    ticks = clock.ticks - ticks0
    frames = sum(c.frames for c in counters) - frames0
    stats = [s.stats() for s in sessions]
    for session in sessions:
        session.close()
    for session in sessions:
        await session.wait_closed()
    n = len(sessions)
    return {
        "legs": n,
        "cpu_pct_per_leg": 100.0 * cpu / wall / n,
        "cpu_pct_total": 100.0 * cpu / wall,
        "us_per_leg_tick": 1e6 * cpu / max(1, ticks) / n,
        "ticks": ticks,
        "skipped": clock.skipped - skipped0,
        "p50_ms": 1000.0 * clock.lateness.percentile(50),
        "p99_ms": 1000.0 * clock.lateness.percentile(99),
        "max_ms": 1000.0 * clock.lateness.max,
        "frames_per_leg_per_s": frames / wall / n,
        "lost": sum(s.packets_lost for s in stats),
        "received": sum(s.packets_received for s in stats),
    }


def report(name: str, r: dict[str, float]) -> None:
    print(
        f"{name:8} legs={r['legs']:.0f}  CPU/leg={r['cpu_pct_per_leg']:.3f}% of a core "
        f"({r['us_per_leg_tick']:.1f} us/leg/tick, total {r['cpu_pct_total']:.1f}%)  "
        f"tick lateness p50={r['p50_ms']:.2f} ms p99={r['p99_ms']:.2f} ms max={r['max_ms']:.2f} ms  "
        f"ticks={r['ticks']:.0f} skipped={r['skipped']:.0f}  "
        f"frames/leg/s={r['frames_per_leg_per_s']:.1f}  lost={r['lost']:.0f}/{r['received']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="call legs (rounded down to even)")
    parser.add_argument("--seconds", type=float, default=5.0)
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    parser.add_argument("--loop", choices=("uvloop", "asyncio", "both"), default="both" if have_uvloop else "asyncio")
    args = parser.parse_args()
    if not 2 <= args.calls <= 5000:
        parser.error("--calls must be within 2..5000")
    loops = ("uvloop", "asyncio") if args.loop == "both" else (args.loop,)
    for name in loops:
        if name == "uvloop":
            import uvloop

            result = uvloop.run(run(args.calls, args.seconds))
        else:
            result = asyncio.run(run(args.calls, args.seconds))
        report(name, result)


if __name__ == "__main__":
    main()
