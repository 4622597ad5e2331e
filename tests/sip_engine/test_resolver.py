"""Trunk host names to SIP targets (RFC 3263): against a real DNS server on loopback for SRV, and the
system resolver (``/etc/hosts``) for addresses."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.peers.dns import dns_server  # noqa: F401 - a fixture
from trunkline.sip_engine.resolver import ResolveError, SrvRecord, TrunkResolver, srv_order
from trunkline.sip_engine.routing import SipTarget


async def test_an_ip_literal_is_used_as_it_is():
    resolver = TrunkResolver(nameservers=[("127.0.0.1", 9)])  # never asked
    assert await resolver.resolve("127.0.0.1", 5070, "udp") == [SipTarget("127.0.0.1", 5070, "udp")]
    assert await resolver.resolve("[::1]", None, "tcp") == [SipTarget("::1", 5060, "tcp")]


async def test_a_name_with_a_port_resolves_through_etc_hosts():
    resolver = TrunkResolver(nameservers=[("127.0.0.1", 9)])
    targets = await resolver.resolve("localhost", 5070, "udp")
    assert SipTarget("127.0.0.1", 5070, "udp") in targets


async def test_srv_records_are_tried_by_priority_and_their_targets_resolved(dns_server):
    server, address = await dns_server({"_sip._udp.carrier.test": ["20 0 5080 localhost.", "10 0 5070 localhost."]})
    resolver = TrunkResolver(nameservers=[address])
    targets = await resolver.resolve("carrier.test", None, "udp")
    assert [t.port for t in targets if t.host == "127.0.0.1"] == [5070, 5080]


async def test_no_srv_record_falls_back_to_the_address_on_the_default_port(dns_server):
    _, address = await dns_server({})
    resolver = TrunkResolver(nameservers=[address])
    assert SipTarget("127.0.0.1", 5060, "tcp") in await resolver.resolve("localhost", None, "tcp")


async def test_answers_are_cached_for_their_ttl(dns_server):
    now = [1000.0]
    server, address = await dns_server({"_sip._udp.carrier.test": ["10 0 5070 localhost."]}, ttl=60)
    resolver = TrunkResolver(nameservers=[address], clock=lambda: now[0])
    for _ in range(3):
        await resolver.resolve("carrier.test", None, "udp")
    assert server.queries["_sip._udp.carrier.test"] == 1
    now[0] += 61
    await resolver.resolve("carrier.test", None, "udp")
    assert server.queries["_sip._udp.carrier.test"] == 2


async def test_a_name_that_does_not_resolve_is_a_clear_error():
    resolver = TrunkResolver(nameservers=[("127.0.0.1", 9)])
    with pytest.raises(ResolveError, match=r"^no-such-carrier\.invalid: "):
        await resolver.resolve("no-such-carrier.invalid", 5060, "udp")


async def test_srv_targets_that_do_not_resolve_are_named(dns_server):
    _, address = await dns_server({"_sip._udp.carrier.test": ["10 0 5070 gone.invalid."]})
    resolver = TrunkResolver(nameservers=[address])
    with pytest.raises(ResolveError, match=r"^carrier\.test: no SRV target resolves \(gone\.invalid: "):
        await resolver.resolve("carrier.test", None, "udp")


def test_srv_order_is_by_priority_then_weighted():
    records = [SrvRecord(10, 90, 1, "heavy"), SrvRecord(10, 10, 2, "light"), SrvRecord(5, 0, 3, "first")]
    firsts: Counter[str] = Counter()
    rng = random.Random(7)
    for _ in range(2000):
        order = srv_order(records, rng)
        assert order[0].target == "first" and sorted(r.target for r in order) == ["first", "heavy", "light"]
        firsts[order[1].target] += 1
    assert 0.85 < firsts["heavy"] / 2000 < 0.95  # weight 90 of 100 comes second about 90% of the time
