"""Soak: many short calls in a row, and what each ended call leaves behind in memory, fds and ports.

The gateway runs in this process and calls go straight into the call service (as bench/cps.py does),
to a SIPp UAS on loopback that answers every INVITE. Each call is answered and then hung up at once:
by the HANGUP app, or (``--app park``) parked and hung up through the API as soon as it is answered.
Calls start at ``--rate`` per second with at most ``--concurrency`` up at once. Every
``--sample-every`` ended calls a row shows RSS, open fds and leased RTP port pairs. After
``--warmup`` ended calls the RSS is noted: by default 40 s worth of calls, since each ended call's
SIP transactions are kept for Timer D (32 s), so memory only reaches its steady state after that;
once every call has ended and the SIP transactions' RFC 3261 timers have run out (``--settle``,
Timer D is 32 s), the growth from there per ended call is printed, with the fds and ports left over.

    python bench/soak.py [--calls 20000] [--rate 200] [--concurrency 100] [--app hangup|park]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource

from _harness import Outcomes, carrier, gateway_for, run

from trunkline.calls.events import CallEvent
from trunkline.enums import DialplanAction, EventType

PAGE = resource.getpagesize()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class HangUpOnAnswer:
    """For ``--app park``: terminate each call once it is answered, outside the event's delivery."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway

    def deliver(self, event: CallEvent) -> bool:
        if event.event_type == EventType.CHANNEL_ANSWER:
            asyncio.get_running_loop().call_soon(self._terminate, event.call_sid)
        return True

    def _terminate(self, sid: str) -> None:
        if self.gateway.calls.find("local", sid) is not None:
            self.gateway.calls.terminate("local", sid)


async def sampler(gateway, outcomes: Outcomes, every: int, warmup: int, marks: dict) -> None:
    """Prints a row at each ``every`` ended calls and notes the RSS once ``warmup`` calls have ended."""
    pool = gateway.telephony.rtp_ports
    next_row = every
    while True:
        ended = outcomes.ended
        if "warm" not in marks and ended >= warmup:
            marks["warm"] = (ended, rss_bytes())
        if ended >= next_row:
            print(f"{ended:>8} {rss_bytes() / 2**20:>9.1f} {open_fds():>5} {pool.leased:>6} "
                  f"{len(gateway.calls.active_calls('local')):>8}", flush=True)
            next_row = (ended // every + 1) * every
        await asyncio.sleep(0.2)


async def drive(gateway, outcomes: Outcomes, calls: int, rate: float, concurrency: int, app: DialplanAction) -> int:
    """Place ``calls`` calls at ``rate`` per second, never more than ``concurrency`` up; returns the
    number refused."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    refused = 0
    for i in range(calls):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        while i - refused - outcomes.ended >= concurrency:
            outcomes.changed.clear()
            try:
                await asyncio.wait_for(outcomes.changed.wait(), 1)
            except asyncio.TimeoutError:
                pass
        try:
            gateway.calls.originate("local", "carrier", to="+15551234567", default_app=app)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the soak goes on
            refused += 1
            if refused <= 3:
                print(f"originate refused: {exc}")
    return refused


async def main(args: argparse.Namespace) -> None:
    sipp = carrier("uas_answer")
    gateway, outcomes = await gateway_for(sipp.port, max_concurrent=args.concurrency)
    app = DialplanAction.PARK if args.app == "park" else DialplanAction.HANGUP
    if app is DialplanAction.PARK:
        gateway.events.subscribe("local", "", HangUpOnAnswer(gateway))
    marks: dict = {}
    pool = gateway.telephony.rtp_ports
    fds_before, rss_before = open_fds(), rss_bytes()
    print(f"{args.calls} calls ({args.app}) at {args.rate:g}/s, at most {args.concurrency} up; "
          f"RSS {rss_before / 2**20:.1f} MiB, {fds_before} fds before the first")
    print(f"{'ended':>8} {'RSS MiB':>9} {'fds':>5} {'ports':>6} {'in call':>8}")
    rows = asyncio.create_task(sampler(gateway, outcomes, args.sample_every, args.warmup, marks))
    try:
        refused = await drive(gateway, outcomes, args.calls, args.rate, args.concurrency, app)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while outcomes.ended < args.calls - refused and loop.time() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        print(f"all calls over ({outcomes.by_status}); waiting {args.settle:g} s for the SIP timers", flush=True)
        await asyncio.sleep(args.settle)
        rows.cancel()
        rss_after, fds_after, ports_after = rss_bytes(), open_fds(), pool.leased
        warm_ended, warm_rss = marks.get("warm", (0, rss_before))
        measured = outcomes.ended - warm_ended
        print(f"\nRSS {warm_rss / 2**20:.1f} MiB after {warm_ended} calls (warm-up), "
              f"{rss_after / 2**20:.1f} MiB after {outcomes.ended}")
        if measured > 0:
            print(f"growth per ended call after the warm-up: {(rss_after - warm_rss) / measured:.0f} bytes "
                  f"(goal <= 1024)")
        print(f"left over: {fds_after - fds_before} fds, {ports_after} RTP port pairs (goal 0 and 0); "
              f"{refused} refused")
    finally:
        rows.cancel()
        await gateway.close()
        sipp.kill()
        sipp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="calls started per second")
    parser.add_argument("--concurrency", type=int, default=100, help="calls up at once, at most")
    parser.add_argument("--app", choices=("hangup", "park"), default="hangup")
    parser.add_argument("--warmup", type=int, help="ended calls before growth is measured (default: 40 s worth)")
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=40.0, help="seconds for the SIP transactions' timers")
    arguments = parser.parse_args()
    if arguments.warmup is None:
        arguments.warmup = int(arguments.rate * 40)
    run(main(arguments))
