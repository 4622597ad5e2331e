"""Fixtures for the SIP engine tests: a started endpoint, SIPp peers that always die, a recorder.

Every wait is bounded by ``WAIT_S`` so that a broken engine fails a test instead of hanging it;
nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.sipp import LOOPBACK, Sipp, uas
from trunkline.sip_engine import SipEndpoint, SipTarget, TimerConfig

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

WAIT_S = 15.0
SIPP_TIMEOUT_S = 20.0

OFFER = (
    b"v=0\r\no=trunkline 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)
HOLD_ANSWER = OFFER.replace(b"a=sendrecv", b"a=recvonly")


class Recorder:
    """A CallListener that records every callback and lets a test await them."""

    def __init__(self, reinvite_answer: tuple[int, bytes | None] = (200, HOLD_ANSWER)) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.reinvite_answer = reinvite_answer
        self.reinvite_offers: list[bytes | None] = []
        self.ack_answers: list[bytes] = []
        self._changed = asyncio.Event()

    def _add(self, *event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    @property
    def names(self) -> list[str]:
        return [e[0] for e in self.events]

    def on_provisional(self, status: int, reason: str, sdp: bytes | None) -> None:
        self._add("provisional", status, sdp)

    def on_answered(self, sdp: bytes) -> None:
        self._add("answered", sdp)

    def on_failed(self, status: int, reason: str, headers: dict[str, str]) -> None:
        self._add("failed", status, headers)

    def on_remote_bye(self) -> None:
        self._add("remote_bye")

    def on_reinvite(self, sdp: bytes | None) -> tuple[int, bytes | None]:
        self.reinvite_offers.append(sdp)
        self._add("reinvite")
        return self.reinvite_answer

    def on_ack_answer(self, sdp: bytes) -> None:
        self.ack_answers.append(sdp)
        self._add("ack_answer", sdp)

    def on_info(self, content_type: str, body: bytes) -> None:
        self._add("info", content_type, body)

    def on_notify(self, event: str | None, subscription_state: str | None, content_type: str,
                  body: bytes) -> int:
        self._add("notify", event, subscription_state, content_type, body)
        return 200

    def on_terminated(self) -> None:
        self._add("terminated")

    async def wait_for(self, name: str, timeout: float = WAIT_S, count: int = 1) -> tuple[Any, ...]:
        """The ``count``-th ``name`` callback, once it has happened."""
        async def scan() -> tuple[Any, ...]:
            while True:
                seen = [event for event in self.events if event[0] == name]
                if len(seen) >= count:
                    return seen[count - 1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    def failed_status(self) -> int | None:
        return next((e[1] for e in self.events if e[0] == "failed"), None)


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    ep = SipEndpoint(LOOPBACK, 0)
    await ep.start()
    try:
        yield ep
    finally:
        await ep.close()


@pytest.fixture
async def fast_endpoint() -> AsyncIterator[SipEndpoint]:
    """Short timers (64*T1 = 1.28 s) for tests that wait for a transaction to time out."""
    ep = SipEndpoint(LOOPBACK, 0, timers=TimerConfig(t1=0.02, t2=0.16, t4=0.2, timer_d=0.5))
    await ep.start()
    try:
        yield ep
    finally:
        await ep.close()


@pytest.fixture
def peers() -> Iterator[list[Sipp]]:
    """SIPp processes started by a test; killed and cleaned up whatever happens."""
    started: list[Sipp] = []
    yield started
    for peer in started:
        peer.cleanup()


def _tcp_listening(port: int) -> bool:
    want = f"{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":" + want) and fields[3] == "0A":
            return True
    return False


async def start_uas(peers: list[Sipp], scenario: str, *, tcp: bool = False,
                    **options: Any) -> tuple[Sipp, SipTarget]:
    """Start a SIPp carrier and wait until it listens; returns it and its target."""
    if tcp:
        options["extra_args"] = [*options.get("extra_args", ()), "-t", "t1"]
    sipp = options.pop("sipp", None) or uas(scenario, timeout_s=SIPP_TIMEOUT_S, **options)
    peers.append(sipp)
    sipp.start()
    if tcp:
        end = time.monotonic() + 5.0
        assert sipp.port is not None
        while not _tcp_listening(sipp.port):
            assert time.monotonic() < end, "sipp did not listen on TCP"
            assert sipp.is_running(), sipp.wait().describe()
            await asyncio.sleep(0.02)
    else:
        await sipp.await_ready()
    assert sipp.port is not None
    return sipp, SipTarget(LOOPBACK, sipp.port, "tcp" if tcp else "udp")


def call_uris(target: SipTarget, user: str = "service") -> dict[str, str]:
    return {
        "request_uri": f"sip:{user}@{target.host}:{target.port}",
        "from_uri": "sip:trunkline@127.0.0.1",
        "to_uri": f"sip:{user}@{target.host}:{target.port}",
    }
