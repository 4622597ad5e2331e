"""Where a trunk's host name sends SIP: RFC 3263 §4 for the transports we speak, without blocking.

A trunk ``host`` may be an IP literal (used as it is), a name with an explicit port (its A/AAAA
records), or a name without one: then its SRV records (``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``),
tried in RFC 2782 order (lowest priority first, weighted random within a priority), each target's
addresses in turn, falling back to A/AAAA on the default port when there is no SRV record.

SRV lookups go through dnspython's asyncio resolver (pure Python, maintained, reads
/etc/resolv.conf; aiodns would add a C library for no gain at a handful of cached lookups a
minute). Addresses go through the system resolver (``loop.getaddrinfo``, which runs in a thread), so
``/etc/hosts`` names such as ``localhost`` work as users expect. Answers are cached: SRV for its TTL,
addresses (the system resolver does not tell the TTL) for ``address_ttl_s``. The caller walks the
returned targets in order, moving to the next on a transport error, a 503 or no answer (§4.3).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from .routing import SipTarget, is_ip_literal

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
SRV_PREFIXES = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
#: A name that does not resolve is asked again after this long, not on every call.
NEGATIVE_TTL_S = 30.0


class ResolveError(LookupError):
    """The trunk's host gave no address; the message says which name and why."""


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


def srv_order(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782: ascending priority; within one, a weighted random draw without replacement
    (weight 0 records come last but may still be chosen)."""
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        pool = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight)
        while pool:
            total = sum(r.weight for r in pool)
            pick = rng.uniform(0, total) if total else 0
            running = 0
            for index, record in enumerate(pool):
                running += record.weight
                if running >= pick:
                    ordered.append(pool.pop(index))
                    break
    return ordered


class TrunkResolver:
    def __init__(self, *, nameservers: Sequence[tuple[str, int]] | None = None, address_ttl_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self._dns = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._dns.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
        self._dns.lifetime = 3.0
        self.address_ttl_s = address_ttl_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._srv: dict[str, tuple[float, list[SrvRecord]]] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[str] | ResolveError]] = {}

    async def resolve(self, host: str, port: int | None, transport: str) -> list[SipTarget]:
        """The targets to try, in order; :class:`ResolveError` when there is none."""
        if is_ip_literal(host):
            return [SipTarget(host.strip("[]"), port or DEFAULT_PORTS[transport], transport)]
        if port is None:
            records = await self._srv_records(f"{SRV_PREFIXES[transport]}.{host}")
            if records:
                targets: list[SipTarget] = []
                failures: list[str] = []
                for record in srv_order(records, self._rng):
                    try:
                        addresses = await self._addresses_of(record.target, record.port)
                    except ResolveError as exc:
                        failures.append(str(exc))
                        continue
                    targets += [SipTarget(a, record.port, transport) for a in addresses]
                if not targets:
                    raise ResolveError(f"{host}: no SRV target resolves ({'; '.join(failures)})")
                return targets
        port = port or DEFAULT_PORTS[transport]
        return [SipTarget(a, port, transport) for a in await self._addresses_of(host, port)]

    async def _srv_records(self, name: str) -> list[SrvRecord]:
        now = self._clock()
        cached = self._srv.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            answer = await self._dns.resolve(name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            records, ttl = [], NEGATIVE_TTL_S
        except dns.exception.DNSException as exc:  # no DNS server reachable: addresses may still resolve
            log.info("SRV lookup of %s failed (%s); trying its address records", name, exc)
            return []
        else:
            records = [SrvRecord(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
                       for r in answer if r.target.to_text() != "."]
            ttl = float(answer.rrset.ttl)
        self._srv[name] = (now + ttl, records)
        return records

    async def _addresses_of(self, host: str, port: int) -> list[str]:
        now = self._clock()
        cached = self._addresses.get((host, port))
        if cached is not None and cached[0] > now:
            if isinstance(cached[1], ResolveError):
                raise cached[1]
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            error = ResolveError(f"{host}: {exc.strerror}")
            self._addresses[(host, port)] = (now + NEGATIVE_TTL_S, error)
            raise error from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))  # IPv4 and IPv6, in the system's order
        self._addresses[(host, port)] = (now + self.address_ttl_s, addresses)
        return addresses

