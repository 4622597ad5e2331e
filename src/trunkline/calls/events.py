"""Call events and their delivery to subscribers, with replay for clients that reconnect.

Routing follows PROTOCOL.md §6: an event with a ``client_id`` goes to that client's subscribers; one
without goes to every subscriber of its tenant. Events for a ``client_id`` that has nobody listening
are kept (bounded, for a grace period) and replayed in order when it subscribes again, so an SDK that
loses its connection mid-call misses nothing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from trunkline.enums import EventType

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallEvent:
    """One state change of a call leg. Counters and quality figures are filled on hangup."""

    call_sid: str
    event_type: EventType
    status: str
    tenant_id: str
    client_id: str = ""
    trunk_id: str = ""
    start_timestamp_ms: int = 0
    answer_timestamp_ms: int = 0
    end_timestamp_ms: int = 0
    duration_seconds: int = 0
    q850_cause: int = 0
    recording_url: str = ""
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_sent: int = 0
    jitter_ms: float = 0.0
    estimated_mos: float = 0.0
    codec: str = ""
    timestamp_ms: int = 0


class EventSubscriber(Protocol):
    def deliver(self, event: CallEvent) -> bool:
        """Take the event now; False means this subscriber can no longer take events (gone or too
        slow), and the hub drops it and keeps the event for replay."""


@dataclass
class _Backlog:
    events: deque = field(default_factory=deque)  # (published_at, CallEvent)
    dropped: int = 0


class EventHub:
    def __init__(self, grace_s: float = 60.0, limit: int = 10_000, clock: Callable[[], float] | None = None) -> None:
        self.grace_s = grace_s
        self.limit = limit
        self._clock = clock or time.monotonic
        self._by_client: dict[tuple[str, str], list[EventSubscriber]] = {}
        self._by_tenant: dict[str, list[EventSubscriber]] = {}
        self._backlogs: dict[tuple[str, str], _Backlog] = {}

    def subscribe(self, tenant_id: str, client_id: str, subscriber: EventSubscriber) -> None:
        """Attach a subscriber; a ``client_id`` first gets its kept events, in order."""
        subs = self._by_tenant.setdefault(tenant_id, [])
        if subscriber not in subs:
            subs.append(subscriber)
        if not client_id:
            return
        key = (tenant_id, client_id)
        clients = self._by_client.setdefault(key, [])
        if subscriber not in clients:
            clients.append(subscriber)
        backlog = self._backlogs.pop(key, None)
        if backlog is None:
            return
        self._expire(backlog)
        if backlog.dropped:
            log.warning("client %s/%s: %d events exceeded the replay limit and were dropped",
                        tenant_id, client_id, backlog.dropped)
        while backlog.events:
            _, event = backlog.events[0]
            if not subscriber.deliver(event):
                self._backlogs[key] = backlog
                self.unsubscribe(subscriber)
                return
            backlog.events.popleft()

    def unsubscribe(self, subscriber: EventSubscriber) -> None:
        for registry in (self._by_tenant, self._by_client):
            for key in [k for k, subs in registry.items() if subscriber in subs]:
                registry[key].remove(subscriber)
                if not registry[key]:
                    del registry[key]

    def publish(self, event: CallEvent) -> None:
        if event.client_id:
            key = (event.tenant_id, event.client_id)
            targets = self._by_client.get(key, ())
        else:
            key = None
            targets = self._by_tenant.get(event.tenant_id, ())
        delivered = False
        for subscriber in list(targets):
            if subscriber.deliver(event):
                delivered = True
            else:
                self.unsubscribe(subscriber)
        if not delivered and key is not None and self.limit:
            backlog = self._backlogs.setdefault(key, _Backlog())
            self._expire(backlog)
            backlog.events.append((self._clock(), event))
            if len(backlog.events) > self.limit:
                backlog.events.popleft()
                backlog.dropped += 1

    def sweep(self) -> None:
        """Forget kept events past their grace period; the server calls this now and then so that
        clients that never come back do not hold memory."""
        for key in list(self._backlogs):
            backlog = self._backlogs[key]
            self._expire(backlog)
            if not backlog.events:
                del self._backlogs[key]

    def subscribers(self, tenant_id: str, client_id: str) -> list[EventSubscriber]:
        """The live subscribers of one client_id (its connections), e.g. to stream a call's audio."""
        return list(self._by_client.get((tenant_id, client_id), ()))

    def pending(self, tenant_id: str, client_id: str) -> int:
        backlog = self._backlogs.get((tenant_id, client_id))
        return len(backlog.events) if backlog else 0

    def _expire(self, backlog: _Backlog) -> None:
        horizon = self._clock() - self.grace_s
        events = backlog.events
        while events and events[0][0] < horizon:
            events.popleft()
