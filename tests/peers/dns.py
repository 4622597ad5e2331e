"""A DNS server on loopback for tests of trunk host names: SRV answers from a zone, NXDOMAIN otherwise."""

from __future__ import annotations

import asyncio
from collections import Counter

import dns.message
import dns.rcode
import dns.rrset
import pytest


class DnsServer(asyncio.DatagramProtocol):
    """Answers SRV questions from ``zone`` (name -> SRV record texts, with a TTL); NXDOMAIN otherwise.
    Counts the queries, so caching shows."""

    def __init__(self, zone: dict[str, list[str]], ttl: int = 300) -> None:
        self.zone = zone
        self.ttl = ttl
        self.queries: Counter[str] = Counter()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        self.queries[name] += 1
        response = dns.message.make_response(query)
        if name in self.zone:
            response.answer.append(dns.rrset.from_text_list(question.name, self.ttl, "IN", "SRV", self.zone[name]))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def dns_server():
    servers = []

    async def start(zone: dict[str, list[str]], ttl: int = 300) -> tuple[DnsServer, tuple[str, int]]:
        transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: DnsServer(zone, ttl), local_addr=("127.0.0.1", 0))
        servers.append(transport)
        return server, transport.get_extra_info("sockname")[:2]

    yield start
    for transport in servers:
        transport.close()
