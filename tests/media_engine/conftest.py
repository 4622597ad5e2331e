"""Real sockets on 127.0.0.1 driven by a real 20 ms media clock; waits are bounded polls, not timings."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.conftest import wait_until
from trunkline.media.rtp import RtpPacket, parse_rtp
from trunkline.media.sdp import NegotiatedMedia
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import RtpPortPool
from trunkline.media_engine.session import MediaSession

HOST = "127.0.0.1"


def negotiated(
    remote_port: int,
    *,
    remote_address: str = HOST,
    codec: str = "PCMU",
    telephone_event_pt: int | None = 101,
    local_direction: str = "sendrecv",
    remote_direction: str = "sendrecv",
) -> NegotiatedMedia:
    return NegotiatedMedia(
        codec=codec,
        payload_type={"PCMU": 0, "PCMA": 8}[codec],
        clock_rate=8000,
        telephone_event_pt=telephone_event_pt,
        remote_address=remote_address,
        remote_port=remote_port,
        remote_direction=remote_direction,
        local_direction=local_direction,
    )


async def ticks(clock: MediaClock, count: int) -> None:
    """Let ``count`` clock ticks pass."""
    target = clock.ticks + count
    await wait_until(lambda: clock.ticks >= target)


async def arrived_rtp(sock: socket.socket) -> list[RtpPacket]:
    """The RTP packets waiting on a non-blocking socket, after a moment for loopback delivery."""
    await asyncio.sleep(0.05)
    packets = []
    while True:
        try:
            packets.append(parse_rtp(sock.recv(2048)))
        except BlockingIOError:
            return packets


def random_pool(size: int = 200) -> RtpPortPool:
    base = random.randrange(20000, 60000 - size, 2)
    return RtpPortPool(HOST, base, base + size - 1)


@pytest.fixture
def clock() -> MediaClock:
    return MediaClock()


@pytest.fixture
def pool() -> RtpPortPool:
    return random_pool()


@pytest.fixture
async def open_session(clock: MediaClock, pool: RtpPortPool) -> AsyncIterator[Callable[..., Awaitable[MediaSession]]]:
    sessions: list[MediaSession] = []

    async def open_(**kwargs: object) -> MediaSession:
        session = await MediaSession.open(clock, pool, **kwargs)  # type: ignore[arg-type]
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        session.close()
    for session in sessions:
        await session.wait_closed()
    assert len(clock) == 0


@pytest.fixture
async def pair(open_session: Callable[..., Awaitable[MediaSession]]) -> tuple[MediaSession, MediaSession]:
    """Two sessions configured to send to each other."""
    a = await open_session()
    b = await open_session()
    a.configure(negotiated(b.local_address[1]))
    b.configure(negotiated(a.local_address[1]))
    return a, b
