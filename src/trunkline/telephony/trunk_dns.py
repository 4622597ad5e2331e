"""Trunk hosts as SIP targets (for calls, pings, registrations) and as source addresses (for the
inbound screen and trunk health), for trunks named by IP address or by host name alike.

Targets are looked up when a request is about to leave (RFC 3263 through :class:`TrunkResolver`,
never blocking the loop). The reverse question, "which trunk is this address", is asked on the hot
path and must be answered synchronously, so every lookup records the trunk's addresses here and one
task refreshes them as often as the resolver's address cache expires.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence

from trunkline.config import TrunkConfig
from trunkline.sip_engine.resolver import DEFAULT_PORTS, ResolveError, TrunkResolver
from trunkline.sip_engine.routing import SipTarget, is_ip_literal

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrunkDirectory:
    def __init__(self, trunks: Sequence[TrunkConfig], resolver: TrunkResolver | None = None) -> None:
        self.trunks = tuple(trunks)
        self.resolver = resolver or TrunkResolver()
        self._targets: dict[str, frozenset[SipTarget]] = {t.id: frozenset() for t in self.trunks}
        self._addresses: dict[str, frozenset[Address]] = {t.id: frozenset() for t in self.trunks}
        for t in self.trunks:
            if is_ip_literal(t.host):
                self._learn(t, [SipTarget(t.host.strip("[]"), t.port or DEFAULT_PORTS[t.transport], t.transport)])
        self._task: asyncio.Task[None] | None = None

    async def targets(self, trunk: TrunkConfig) -> list[SipTarget]:
        """Where to send to ``trunk``, in the order to try; :class:`ResolveError` when nowhere.
        A trunk without a port (0) is looked up by SRV first."""
        targets = await self.resolver.resolve(trunk.host, trunk.port or None, trunk.transport)
        self._learn(trunk, targets)
        return targets

    def _learn(self, trunk: TrunkConfig, targets: list[SipTarget]) -> None:
        self._targets[trunk.id] = frozenset(targets)
        self._addresses[trunk.id] = frozenset(ipaddress.ip_address(t.host) for t in targets)

    def sent_to(self, target: SipTarget) -> TrunkConfig | None:
        """The trunk that ``target`` is (one of) the last resolved target(s) of: where a transport
        failure counts."""
        return next((t for t in self.trunks if target in self._targets[t.id]), None)

    def owner(self, host: str) -> TrunkConfig | None:
        """The first trunk whose host is (or last resolved to) ``host``; ports do not count, since
        carriers often send from another port than the one they listen on."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        for trunk in self.trunks:
            if address in self._addresses[trunk.id]:
                return trunk
        return None

    async def refresh(self) -> None:
        """Look up every trunk named by host name again (the resolver's cache answers most)."""
        for trunk in self.trunks:
            if is_ip_literal(trunk.host):
                continue
            try:
                await self.targets(trunk)
            except ResolveError as exc:
                log.warning("trunk %s: host does not resolve, keeping its last addresses: %s", trunk.id, exc)

    async def start(self) -> None:
        """Resolve the named trunks once (so their calls in are recognised from the start), then
        keep them fresh."""
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resolver.address_ttl_s)
            await self.refresh()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
