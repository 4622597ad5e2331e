"""A dialog-creating request from an address that matches no trunk gets one stateless 403.

A server transaction would retransmit its final answer until timer H (eleven sends over UDP),
so a spoofed source could turn one packet into eleven aimed at someone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from trunkline.config import TrunkConfig
from trunkline.sip_engine import SipEndpoint, SipTarget, TimerConfig
from trunkline.telephony.trunk_dns import TrunkDirectory

from .test_endpoint import RawPeer, raw, request  # noqa: F401 - raw is a fixture

TRUNK = TrunkConfig(id="carrier", host="192.0.2.10", port=5060)


@pytest.fixture
async def screened() -> AsyncIterator[SipEndpoint]:
    """Short timers: a stateful 403 would be sent again within 20 ms, and eleven times in 1.3 s."""
    ep = SipEndpoint("127.0.0.1", 0, timers=TimerConfig(t1=0.02, t2=0.16, t4=0.2, timer_d=0.5))
    ep.admit_only(lambda source: TrunkDirectory([TRUNK]).owner(source.host) is not None)
    await ep.start()
    yield ep
    await ep.close()


async def test_a_stranger_invite_gets_one_stateless_403(
    screened: SipEndpoint, raw: RawPeer, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    assert raw.transport is not None
    caplog.set_level(logging.WARNING, "trunkline.sip_engine.endpoint")
    for method in ("INVITE", "SUBSCRIBE", "REFER"):
        raw.transport.sendto(request(method), screened.address)
        answer = await raw.response()
        assert (method, answer.status) == (method, 403)
    assert screened.stats.transactions_active == 0
    await asyncio.sleep(1.5)  # past every retransmission a transaction would have made
    assert raw.inbox.empty()
    assert screened.stats.strangers_refused == 3
    lines = [r.getMessage() for r in caplog.records if "matching no trunk" in r.getMessage()]
    assert lines == ["SIP refused 1 request(s) from addresses matching no trunk "
                     f"(latest INVITE from 127.0.0.1:{raw.port})"]


async def test_a_stranger_may_still_ask_options(screened: SipEndpoint, raw: RawPeer) -> None:  # noqa: F811
    assert raw.transport is not None
    raw.transport.sendto(request("OPTIONS"), screened.address)
    assert (await raw.response()).status == 200
    assert screened.stats.strangers_refused == 0


def test_a_trunk_is_matched_by_address_not_port() -> None:
    assert TrunkDirectory([TRUNK]).owner("192.0.2.10") is TRUNK
    assert TrunkDirectory([TRUNK]).owner("192.0.2.11") is None
    assert TrunkDirectory([TrunkConfig(id="v6", host="[2001:db8::1]")]).owner("2001:db8:0::1") is not None


async def test_a_trunk_named_by_host_name_matches_its_resolved_addresses() -> None:
    named = TrunkConfig(id="named", host="localhost", port=5060)
    directory = TrunkDirectory([named])
    assert directory.owner("127.0.0.1") is None  # not looked up yet
    await directory.refresh()
    assert directory.owner("127.0.0.1") is named


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_started_gateway_screens_by_its_trunks(start_gateway, host: str) -> None:
    """The whole gateway, not just the endpoint: its trunk's host (by address or by a name that
    resolves to it) may call in, another address may not."""
    gateway = await start_gateway({"trunks": [{"id": "carrier", "host": host, "port": 5070}]})
    loop = asyncio.get_running_loop()
    answers = {}
    for source in ("127.0.0.2", "127.0.0.1"):
        _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=(source, 0))
        try:
            assert peer.transport is not None
            peer.transport.sendto(request("INVITE", via_host=source, via_port=peer.transport.get_extra_info("sockname")[1]),
                                  gateway.sip.address)
            answers[source] = (await asyncio.wait_for(peer.inbox.get(), 10)).split(b"\r\n", 1)[0]
        finally:
            assert peer.transport is not None
            peer.transport.close()
    assert answers["127.0.0.2"] == b"SIP/2.0 403 Forbidden"
    assert answers["127.0.0.1"] != b"SIP/2.0 403 Forbidden"
    assert gateway.sip.stats.strangers_refused == 1
