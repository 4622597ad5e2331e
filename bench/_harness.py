"""Shared pieces of the call benchmarks: a gateway in this process aimed at a SIPp carrier."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.peers: the SIPp harness

from _loop import run  # noqa: E402,F401 - the benchmarks' entry point
from tests.peers.sipp import uas  # noqa: E402
from trunkline.calls.events import CallEvent  # noqa: E402
from trunkline.config import config_from_dict  # noqa: E402
from trunkline.enums import EventType  # noqa: E402
from trunkline.gateway import Gateway  # noqa: E402


class Outcomes:
    """Counts hangups by status, straight from the event hub (no RPC in the measured path)."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self.answered = 0
        self.changed = asyncio.Event()

    def deliver(self, event: CallEvent) -> bool:
        if event.event_type == EventType.CHANNEL_ANSWER:
            self.answered += 1
        elif event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
            self.by_status[event.status] = self.by_status.get(event.status, 0) + 1
        self.changed.set()
        return True

    @property
    def ended(self) -> int:
        return sum(self.by_status.values())


async def gateway_for(sipp_port: int, max_concurrent: int) -> tuple[Gateway, Outcomes]:
    config = config_from_dict({
        "server": {"quic_listen": "127.0.0.1:0", "data_dir": tempfile.mkdtemp(prefix="trunkline-bench-")},
        "sip": {"listen": "127.0.0.1:0"},
        "trunks": [{"id": "carrier", "host": "127.0.0.1", "port": sipp_port, "max_concurrent": max_concurrent,
                    "keepalive_s": 0}],
    })
    gateway = Gateway(config)
    await gateway.start()
    outcomes = Outcomes()
    gateway.events.subscribe("local", "", outcomes)
    return gateway, outcomes


def carrier(scenario: str = "uas_answer", **options):
    peer = uas(scenario, calls=None, timeout_s=600, **options)
    peer.start().wait_ready()
    return peer


def cpu() -> float:
    return time.process_time()


