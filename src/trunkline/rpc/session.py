"""Per-connection state the dispatcher and handlers share: who the peer acts for, and until when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trunkline.calls.events import CallEvent


class ConnectionOutlet(Protocol):
    """What the transport offers the domain side: push events and audio to this peer."""

    def deliver(self, event: CallEvent) -> bool: ...

    def send_audio(self, call_sid: str, payload: bytes, codec: str, sequence_number: int, end_of_stream: bool) -> bool: ...

    def keep_alive(self) -> None:
        """Keep the connection up while it is quiet (an event subscriber waiting for calls)."""

    def expire_at(self, expires_at: float) -> None:
        """Stop this peer's event and audio streams when ``expires_at`` (wall clock, s) passes,
        unless a fresh token moves it (§5: expiry is one instant for RPCs and streams alike)."""


@dataclass
class Session:
    peer: str
    outlet: ConnectionOutlet
    tenant_id: str | None = None
    expires_at: float | None = None  # None: never (open mode)

    def authorized(self, now: float) -> bool:
        return self.tenant_id is not None and (self.expires_at is None or now < self.expires_at)
