"""Run a benchmark's coroutine on uvloop when it is installed, as ``trunkline serve`` does."""

from __future__ import annotations

import asyncio


def run(main) -> None:
    try:
        import uvloop
    except ImportError:  # decided before running: an ImportError raised inside ``main`` must propagate
        asyncio.run(main)
    else:
        uvloop.run(main)
