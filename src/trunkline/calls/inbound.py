"""What a trunk does with the calls it receives: one of the four InboundRules and its arguments.

A plain record the domain keeps per (tenant, trunk) and the store keeps durable (PROTOCOL.md §6
"Inbound": routing set by SetInboundRouting survives a restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from trunkline.calls.errors import CallError
from trunkline.config import TrunkConfig
from trunkline.enums import ErrorCode, InboundRule


@dataclass(frozen=True, slots=True)
class InboundRouting:
    tenant_id: str
    trunk_id: str
    rule: InboundRule
    audio_url: str = ""  # PLAY_AND_HANGUP
    webhook_url: str = ""  # NOTIFY_AND_HANGUP
    ai_websocket_url: str = ""  # HANDLE_AI: a URL, or the configured agent below
    ai_quic_url: str = ""
    agent_id: str = ""
    updated_ms: int = 0


class RoutingStore(Protocol):
    """Where routing is kept durable (the store package's adapter)."""

    async def put_inbound_routing(self, routing: InboundRouting) -> None: ...

    async def inbound_routings(self) -> list[InboundRouting]: ...


class InboundRoutes:
    """Each trunk's routing, read from memory on every incoming INVITE and written through the store
    before it takes effect, so a routing that was acknowledged survives a crash (PROTOCOL.md §6)."""

    def __init__(self, store: RoutingStore, trunks: dict[str, TrunkConfig], agents: Iterable[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._trunks = trunks
        self._agents = frozenset(agents)
        self._clock = clock
        self._routes: dict[tuple[str, str], InboundRouting] = {}

    async def load(self, initial: Iterable[InboundRouting] = ()) -> None:
        """Stored routing wins over ``initial`` (the config's): the config only seeds a trunk that was
        never routed over the API."""
        for routing in initial:
            self._routes[(routing.tenant_id, routing.trunk_id)] = routing
        for routing in await self._store.inbound_routings():
            self._routes[(routing.tenant_id, routing.trunk_id)] = routing

    def routing(self, tenant_id: str, trunk_id: str) -> InboundRouting | None:
        """The trunk's routing; None means the trunk rejects its calls."""
        return self._routes.get((tenant_id, trunk_id))

    async def set(self, routing: InboundRouting) -> InboundRouting:
        """Validate, store, then apply; refusals are :class:`CallError` naming the field."""
        trunk = self._trunks.get(routing.trunk_id)
        if trunk is None or trunk.tenant != routing.tenant_id:
            raise CallError(ErrorCode.ERR_INVALID_TRUNK, f"unknown trunk {routing.trunk_id!r}")
        self._validate(routing)
        routing = replace(routing, updated_ms=int(self._clock() * 1000))
        await self._store.put_inbound_routing(routing)
        self._routes[(routing.tenant_id, routing.trunk_id)] = routing
        return routing

    def _validate(self, routing: InboundRouting) -> None:
        rule = routing.rule
        if rule is InboundRule.PLAY_AND_HANGUP and not routing.audio_url.startswith(_AUDIO_LOCATIONS):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"PLAY_AND_HANGUP needs audio_url: an absolute .wav path, file:// or http(s) URL, "
                            f"got {routing.audio_url!r}")
        if rule is InboundRule.NOTIFY_AND_HANGUP and not routing.webhook_url.startswith(("http://", "https://")):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"NOTIFY_AND_HANGUP needs webhook_url: an http(s) URL, got {routing.webhook_url!r}")
        if rule is InboundRule.HANDLE_AI:
            if routing.agent_id and routing.agent_id not in self._agents:
                raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"unknown agent {routing.agent_id!r}")
            if not (routing.ai_websocket_url or routing.ai_quic_url or routing.agent_id):
                raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                                "HANDLE_AI needs ai_websocket_url, ai_quic_url or a configured agent")
        if routing.ai_websocket_url and not routing.ai_websocket_url.startswith(("ws://", "wss://")):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, "ai_websocket_url must be ws:// or wss://")
        if routing.ai_quic_url and not routing.ai_quic_url.startswith(("https://", "quic://")):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, "ai_quic_url must be https:// or quic://")


_AUDIO_LOCATIONS = ("/", "file://", "http://", "https://")
