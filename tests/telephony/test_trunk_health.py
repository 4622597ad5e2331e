"""Trunk keepalive: OPTIONS to a live SIP peer and to a dead port, health kept per trunk."""

from __future__ import annotations

from tests.peers.sipp import free_udp_port
from trunkline.config import TrunkConfig
from trunkline.sip_engine import SipEndpoint, TimerConfig
from trunkline.telephony.trunk_health import TrunkMonitor


async def test_options_keepalive_records_reachable_and_dead_trunks():
    fast = TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.1)
    gateway, carrier = SipEndpoint("127.0.0.1", 0, timers=fast), SipEndpoint("127.0.0.1", 0)
    await gateway.start()
    await carrier.start()
    live = TrunkConfig(id="live", host="127.0.0.1", port=carrier.address[1])
    dead = TrunkConfig(id="dead", host="127.0.0.1", port=free_udp_port())
    monitor = TrunkMonitor(gateway, (live, dead))
    try:
        assert (await monitor.check(live)).reachable
        assert monitor.health["live"].last_status == 200 and monitor.health["live"].last_rtt_ms is not None
        await monitor.check(dead)
        await monitor.check(dead)
        assert not monitor.health["dead"].reachable and monitor.health["dead"].consecutive_failures == 2
    finally:
        await monitor.close()
        await gateway.close()
        await carrier.close()
