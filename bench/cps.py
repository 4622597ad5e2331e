"""Call setups per second: Originate at rising rates against a SIPp UAS, until calls fail.

The gateway runs in this process (so its CPU is what ``process_time`` measures) and calls go
straight into the call service, the way the RPC handler calls it. Each call is answered by SIPp and
hung up at once by the HANGUP app, so a setup is INVITE/100/200/ACK/BYE/200. For each rate the
script reports answered/failed calls and CPU per call; it prints the highest rate with no failure.
Traffic stays on 127.0.0.1 and every step is bounded in time.

    python bench/cps.py [--seconds 3] [--rates 50,100,200,300,400,500]
"""

from __future__ import annotations

import argparse
import asyncio

from _harness import carrier, cpu, gateway_for, run

from trunkline.enums import DialplanAction


async def step(gateway, outcomes, rate: int, seconds: float) -> tuple[int, int, float]:
    before_ended, before_ok, before_cpu = outcomes.ended, outcomes.by_status.get("COMPLETED", 0), cpu()
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    refused = 0
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            gateway.calls.originate("local", "carrier", to="+15551234567", default_app=DialplanAction.HANGUP)
        except Exception:  # noqa: BLE001 - a refusal is a failure of this rate
            refused += 1
    deadline = loop.time() + 35
    while outcomes.ended - before_ended < total - refused and loop.time() < deadline:
        outcomes.changed.clear()
        try:
            await asyncio.wait_for(outcomes.changed.wait(), 1)
        except asyncio.TimeoutError:
            pass
    ok = outcomes.by_status.get("COMPLETED", 0) - before_ok
    return ok, total - ok, (cpu() - before_cpu) / max(1, total)


async def main(seconds: float, rates: list[int]) -> None:
    sipp = carrier("uas_answer")
    gateway, outcomes = await gateway_for(sipp.port, max_concurrent=100_000)
    best = 0
    print(f"{'rate/s':>7} {'ok':>6} {'failed':>7} {'CPU ms/call':>12}")
    try:
        for rate in rates:
            ok, failed, cpu_per_call = await step(gateway, outcomes, rate, seconds)
            print(f"{rate:>7} {ok:>6} {failed:>7} {cpu_per_call * 1000:>12.2f}", flush=True)
            if failed:
                break
            best = rate
            await asyncio.sleep(0.5)
    finally:
        await gateway.close()
        sipp.kill()
        sipp.cleanup()
    print(f"\nhighest rate with 0 failures: {best} setups/s (goal >= 300 per core)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="50,100,200,300,400,500,600")
    args = parser.parse_args()
    run(main(args.seconds, [int(r) for r in args.rates.split(",")]))
