"""Helpers for end-to-end call tests: a gateway whose trunk points at a test peer, and a watcher
that collects each call's CallEvents through the SDK, as an application would."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from tests.conftest import client_for
from trunkline.enums import EventType
from trunkline.sdk import CallEvent, Client


class CallWatch:
    """Subscribes before dialling so no event is missed; one list of events per call_sid."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: dict[str, list[CallEvent]] = defaultdict(list)
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.client.events():
            self.events[event.call_sid].append(event)
            self._changed.set()

    async def until(self, call_sid: str, status: str, timeout: float = 20.0) -> CallEvent:
        async def wait() -> CallEvent:
            while True:
                for event in self.events.get(call_sid, ()):
                    if event.status == status:
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def hangup(self, call_sid: str, timeout: float = 30.0) -> CallEvent:
        async def wait() -> CallEvent:
            while True:
                for event in self.events.get(call_sid, ()):
                    if event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    def statuses(self, call_sid: str) -> list[str]:
        return [e.status for e in self.events.get(call_sid, ())]

    async def close(self) -> None:
        self._task.cancel()


async def watched_client(gateway):
    """An SDK client with a live event subscription (open before the first dial)."""
    client = client_for(gateway)
    await client.open()
    watch = CallWatch(client)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not gateway.events._by_client.get(("local", client.client_id)):
        assert loop.time() < deadline, "event subscription did not start"
        await asyncio.sleep(0.01)
    return client, watch


def carrier(port: int, **trunk: object) -> dict:
    """Gateway config overrides: the ``carrier`` trunk aimed at a peer on 127.0.0.1:``port``."""
    return {"trunks": [{"id": "carrier", "host": "127.0.0.1", "port": port, **trunk}]}
