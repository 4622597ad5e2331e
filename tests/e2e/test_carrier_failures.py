"""Carriers that fail: a dead trunk, a trunk that redirects, session timers against SIPp.

Each test asserts the call's outcome (status and Q.850 cause) as an application sees it.
"""

from __future__ import annotations

import socket

from tests.e2e.calls import carrier, watched_client

TO = "+15551234567"


async def test_a_dead_udp_trunk_fails_at_once_with_cause_27(start_gateway):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # closed again: nothing listens there
    gateway = await start_gateway(carrier(dead_port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier")
    hangup = await watch.hangup(call.call_sid, timeout=10)  # timer B would take 32 s
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 27)
    assert gateway.trunk_monitor.health["carrier"].consecutive_failures >= 1
