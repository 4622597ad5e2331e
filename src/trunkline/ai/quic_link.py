"""QUIC agents as :class:`~trunkline.ai.link.AgentLink`s: one WebTransport session per agent
endpoint, shared by every call to it (PROTOCOL.md §7), opened on first use.

Concurrent first calls to the same endpoint wait for one connect rather than racing several; a
session that dies is replaced on the next call (calls already on it end: their agent is gone).
"""

from __future__ import annotations

import asyncio
from typing import Callable

from trunkline.ai.events import AgentEvent, CallInfo
from trunkline.ai.link import AgentUnreachable
from trunkline.ai.webtransport import AgentCall, WebTransportAgentClient


class QuicAgentPool:
    def __init__(self, verify: bool | str = True) -> None:
        self.verify = verify
        self._clients: dict[tuple[str, int], asyncio.Future[WebTransportAgentClient]] = {}

    def link(self, url: str, info: CallInfo, sample_rate: int) -> "QuicAgentLink":
        return QuicAgentLink(self, url, info, sample_rate)

    async def client(self, url: str, sample_rate: int) -> WebTransportAgentClient:
        key = (url, sample_rate)
        pending = self._clients.get(key)
        if pending is not None and pending.done() and (pending.exception() or not pending.result().connected):
            pending = None  # the last session failed or died: make a new one
        if pending is None:
            pending = self._clients[key] = asyncio.ensure_future(self._connect(url, sample_rate))
        return await asyncio.shield(pending)

    async def _connect(self, url: str, sample_rate: int) -> WebTransportAgentClient:
        client = WebTransportAgentClient(url, verify=self.verify, sample_rate=sample_rate)
        try:
            await client.connect()
        except ConnectionError as exc:
            raise AgentUnreachable(f"{url}: {exc}") from None
        return client

    async def close(self) -> None:
        for pending in self._clients.values():
            if pending.done() and not pending.exception():
                await pending.result().close()
            else:
                pending.cancel()
        self._clients.clear()


class QuicAgentLink:
    audio_codec = None  # §7 datagrams carry PCM16

    def __init__(self, pool: QuicAgentPool, url: str, info: CallInfo, sample_rate: int) -> None:
        self.pool = pool
        self.url = url
        self.info = info
        self.sample_rate = sample_rate
        self.on_event: Callable[[AgentEvent], None] | None = None
        self.on_closed: Callable[[str], None] | None = None
        self._call: AgentCall | None = None

    async def open(self) -> None:
        client = await self.pool.client(self.url, self.sample_rate)
        self._call = client.open_call(self.info, {}, on_event=self._event, on_closed=self._closed)

    def _event(self, event: AgentEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _closed(self, reason: str) -> None:
        if self.on_closed is not None:
            self.on_closed(reason)

    def send_audio(self, pcm: bytes) -> None:
        if self._call is not None:
            self._call.send_audio(pcm)

    def send_dtmf(self, digit: str) -> None:
        if self._call is not None:
            self._call.send_dtmf(digit)

    def mark_played(self, name: str) -> None:
        if self._call is not None:
            self._call.mark_played(name)

    def barge_in(self) -> None:
        if self._call is not None:
            self._call.barge_in()

    def close(self) -> None:
        if self._call is not None:
            self._call.close()
