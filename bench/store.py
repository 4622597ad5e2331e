"""The embedded store's writes, and what they cost the event loop: the writer thread with group commit
against the same writes made inline on the loop.

    python bench/store.py [--writes 2000] [--concurrency 50] [--synchronous FULL]

``--concurrency`` writers each await one write after another (as calls or campaign rows would), while
a probe timer that should fire every millisecond records how late it runs: the event loop's stall.
Inline, each commit (an fsync with ``synchronous=FULL``) blocks the loop; the store's thread commits
whatever queued up meanwhile in one transaction. Prints writes/s, commits, and loop lag p50/p99/max
for both, in the same run. Files go to a temporary folder and are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from _loop import run

from trunkline.calls.inbound import InboundRouting
from trunkline.enums import InboundRule
from trunkline.store import SqliteStore
from trunkline.store.sqlite import MIGRATIONS


class LagProbe:
    """A 1 ms timer that records how late each firing is (ms)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._running = True

    async def run(self) -> None:
        while self._running:
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, (time.perf_counter() - due) * 1000))

    def stop(self) -> None:
        self._running = False

    def summary(self) -> str:
        lags = sorted(self.lags) or [0.0]
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        return f"loop lag p50 {statistics.median(lags):6.2f} p99 {p99:6.2f} max {lags[-1]:6.2f} ms"


def routing(i: int) -> InboundRouting:
    return InboundRouting("bench", f"trunk-{i}", InboundRule.HANDLE_AI, agent_id="a", updated_ms=i)


async def measure(write, writes: int, concurrency: int) -> tuple[float, str]:
    probe = LagProbe()
    probe_task = asyncio.create_task(probe.run())
    counter = iter(range(writes))

    async def writer() -> None:
        for i in counter:
            await write(routing(i))

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    probe.stop()
    await probe_task
    return writes / elapsed, probe.summary()


async def main(writes: int, concurrency: int, synchronous: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore.open(Path(folder) / "thread.db", synchronous=synchronous)
        rate, lag = await measure(store.put_inbound_routing, writes, concurrency)
        print(f"writer thread, group commit: {rate:8.0f} writes/s in {store.commits:5d} commits; {lag}")
        await store.close()

        db = sqlite3.connect(Path(folder) / "inline.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(MIGRATIONS[0])

        async def inline(r: InboundRouting) -> None:
            db.execute("INSERT OR REPLACE INTO inbound_routing VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (r.tenant_id, r.trunk_id, int(r.rule), r.audio_url, r.webhook_url, r.ai_websocket_url,
                        r.ai_quic_url, r.agent_id, r.updated_ms))

        rate, lag = await measure(inline, writes, concurrency)
        print(f"inline on the loop:          {rate:8.0f} writes/s in {writes:5d} commits; {lag}")
        db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    args = parser.parse_args()
    run(main(args.writes, args.concurrency, args.synchronous))
