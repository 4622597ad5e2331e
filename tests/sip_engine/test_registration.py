"""REGISTER against a SIPp registrar: digest, refresh before expiry, removal on stop()."""

from __future__ import annotations

import asyncio

from tests.peers.sipp import DEFAULT_KEYS
from trunkline.sip_engine import Credentials, Registration, SipEndpoint

from .conftest import SIPP_TIMEOUT_S, WAIT_S, needs_sipp, start_uas

pytestmark = needs_sipp


async def test_register_refresh_and_unregister(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_register")
    creds = Credentials(DEFAULT_KEYS["auth_user"], DEFAULT_KEYS["auth_pass"])
    seen: list[tuple[str, int | None, int | None]] = []
    refreshed = asyncio.Event()

    def changed(reg: Registration) -> None:
        seen.append((reg.state, reg.status, reg.expires))
        if [s for s, _, _ in seen].count("registered") == 2:
            refreshed.set()

    registration = endpoint.register(target, f"sip:trunkline@127.0.0.1:{target.port}", creds,
                                     expires=60)
    registration.on_change = changed
    assert registration.state == "registering"
    await asyncio.wait_for(refreshed.wait(), WAIT_S)  # the registrar granted 2 s: refreshed at ~1 s
    assert seen == [("registered", 200, 2), ("registered", 200, 2)]
    assert await registration.stop() == 200
    assert registration.state == "unregistered" and registration.expires is None
    assert await registration.stop() == 200  # idempotent
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok and result.successful == 1, result.describe()
    registers = result.requests("REGISTER", "received")
    assert len(registers) == 6
    assert len({r.header("Call-ID") for r in registers}) == 1
    seqs = [int(r.header("CSeq").split()[0]) for r in registers]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    assert [r.header("Expires") for r in registers] == ["60"] * 4 + ["0"] * 2
