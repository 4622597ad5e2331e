"""Per-trunk keepalive (OPTIONS) and registration, and what they say about each trunk's health.

The results are kept per trunk (last status, round trip, consecutive failures) so that the circuit
breaker, metrics and the console can read one place. Each trunk with ``keepalive_s > 0`` gets its
own loop (trunks are few), so a dead trunk's timeouts never delay another's pings; the first ping
goes out one interval after start. Transport failures of any request to a trunk (ICMP unreachable,
TCP refused or reset, as the endpoint reports them) count at once through :meth:`record_failure`,
attributed by target, so a trunk named by host name counts them too. Pings and registrations go to
the trunk's first target (RFC 3263), looked up each time (the resolver caches it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from trunkline.config import TrunkConfig
from trunkline.sip_engine import Credentials, SipEndpoint, SipTarget, SipTransportError
from trunkline.sip_engine.resolver import ResolveError
from trunkline.telephony.trunk_dns import TrunkDirectory

log = logging.getLogger(__name__)

@dataclass
class TrunkHealth:
    trunk_id: str
    last_status: int | None = None
    last_rtt_ms: float | None = None
    last_checked: float = 0.0
    consecutive_failures: int = 0

    @property
    def reachable(self) -> bool:
        """Any SIP answer means the far end is alive (a 404 or 405 to OPTIONS included)."""
        return self.last_status is not None and self.consecutive_failures == 0


class TrunkMonitor:
    def __init__(self, endpoint: SipEndpoint, trunks: tuple[TrunkConfig, ...],
                 directory: TrunkDirectory | None = None) -> None:
        self.endpoint = endpoint
        self.trunks = trunks
        self.directory = directory or TrunkDirectory(trunks)
        self.health = {t.id: TrunkHealth(t.id) for t in trunks}
        self._registrations: list = []
        self._tasks: list[asyncio.Task] = []
        endpoint.on_transport_failure = self._transport_failed

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._register(t)) for t in self.trunks if t.register]
        self._tasks += [asyncio.create_task(self._keepalive(t)) for t in self.trunks if t.keepalive_s > 0]

    async def _register(self, trunk: TrunkConfig) -> None:
        try:
            target = (await self.directory.targets(trunk))[0]
        except ResolveError as exc:
            self.record_failure(trunk.id, f"not registering, host does not resolve: {exc}")
            return
        aor = f"sip:{trunk.username or 'trunkline'}@{trunk.host}"
        credentials = Credentials(trunk.username, trunk.password) if trunk.username else None
        self._registrations.append(self.endpoint.register(target, aor, credentials))

    def _transport_failed(self, target: SipTarget, reason: str) -> None:
        trunk = self.directory.sent_to(target)
        if trunk is not None:
            self.record_failure(trunk.id, reason)

    def record_failure(self, trunk_id: str, reason: str) -> None:
        """One failure of the trunk (a ping or a request it did not take): the circuit breaker's input."""
        health = self.health[trunk_id]
        health.consecutive_failures += 1
        health.last_checked = time.time()
        if health.consecutive_failures in (1, 10) or health.consecutive_failures % 100 == 0:
            log.warning("trunk %s failing (%d in a row): %s", trunk_id, health.consecutive_failures, reason)

    async def _keepalive(self, trunk: TrunkConfig) -> None:
        while True:
            await asyncio.sleep(trunk.keepalive_s)
            await self.check(trunk)

    async def check(self, trunk: TrunkConfig) -> TrunkHealth:
        health = self.health[trunk.id]
        started = time.monotonic()
        try:
            target = (await self.directory.targets(trunk))[0]
            health.last_status = await self.endpoint.options(target)
            health.last_rtt_ms = (time.monotonic() - started) * 1000
            health.consecutive_failures = 0
            health.last_checked = time.time()
        except ResolveError as exc:
            self.record_failure(trunk.id, f"host does not resolve: {exc}")
        except SipTransportError:
            pass  # the endpoint reported it through on_transport_failure, which counted it
        except Exception as exc:  # noqa: BLE001 - timeout or anything else: the trunk is not answering
            self.record_failure(trunk.id, f"no answer to OPTIONS: {exc}")
        return health

    async def close(self) -> None:
        if self.endpoint.on_transport_failure == self._transport_failed:
            self.endpoint.on_transport_failure = None
        for task in self._tasks:
            task.cancel()
        for registration in self._registrations:
            await registration.stop()

