"""Trunks named by host name (RFC 3263): placed through /etc/hosts, through SRV records with fail-over
from a dead first target, and failed FAILED/27 when the name does not resolve."""

from __future__ import annotations

import shutil
import socket

import pytest

from tests.e2e.calls import watched_client
from tests.peers.dns import dns_server  # noqa: F401 - a fixture
from tests.peers.sipp import uas

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"


def _dead_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


@needs_sipp
async def test_a_trunk_named_localhost_is_called(start_gateway, peers):
    sipp = await peers(uas("uas_answer", timeout_s=30))
    gateway = await start_gateway({"trunks": [{"id": "carrier", "host": "localhost", "port": sipp.port}]})
    _, watch = await watched_client(gateway)
    assert (await watch.answered_then_ended(TO, "carrier")).status == "COMPLETED"


@needs_sipp
async def test_srv_fails_over_from_a_dead_target_to_the_next(start_gateway, peers, dns_server):
    sipp = await peers(uas("uas_answer", timeout_s=30))
    server, address = await dns_server({"_sip._udp.carrier.test": [
        f"10 0 {_dead_udp_port()} localhost.", f"20 0 {sipp.port} localhost."]})
    gateway = await start_gateway({"sip": {"dns_servers": [f"{address[0]}:{address[1]}"]},
                                   "trunks": [{"id": "carrier", "host": "carrier.test", "keepalive_s": 0}]})
    _, watch = await watched_client(gateway)
    # timer B on the dead one would take 32 s
    assert (await watch.answered_then_ended(TO, "carrier", answer_timeout=10)).status == "COMPLETED"
    assert server.queries["_sip._udp.carrier.test"] >= 1
    assert gateway.trunk_monitor.health["carrier"].consecutive_failures >= 1  # the dead target counted


@needs_sipp
async def test_srv_fails_over_from_a_503_to_the_next_target(start_gateway, peers, dns_server):
    busy = await peers(uas("uas_unavailable", timeout_s=30))
    live = await peers(uas("uas_answer", timeout_s=30))
    _, address = await dns_server({"_sip._udp.carrier.test": [
        f"10 0 {busy.port} localhost.", f"20 0 {live.port} localhost."]})
    gateway = await start_gateway({"sip": {"dns_servers": [f"{address[0]}:{address[1]}"]},
                                   "trunks": [{"id": "carrier", "host": "carrier.test", "keepalive_s": 0}]})
    _, watch = await watched_client(gateway)
    assert (await watch.answered_then_ended(TO, "carrier", answer_timeout=10)).status == "COMPLETED"
    assert (await busy.await_result(timeout=10)).requests("INVITE", "received")


async def test_a_trunk_host_that_does_not_resolve_fails_the_call_with_cause_27(start_gateway, caplog):
    gateway = await start_gateway({"trunks": [{"id": "carrier", "host": "no-such-carrier.invalid", "port": 5060,
                                               "keepalive_s": 0}]})
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid, timeout=10)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 27)
    assert "call via trunk carrier failed: its host does not resolve (no-such-carrier.invalid: " in caplog.text
