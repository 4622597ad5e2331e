"""Inbound routing per trunk: validated, written to the store before it applies, and read back after
a restart, with the config's routing only as the seed of a trunk never routed over the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.calls.errors import CallError
from trunkline.calls.inbound import InboundRouting, InboundRoutes
from trunkline.config import TrunkConfig
from trunkline.enums import ErrorCode, InboundRule
from trunkline.store import SqliteStore

TRUNKS = {"carrier": TrunkConfig(id="carrier", tenant="acme"), "theirs": TrunkConfig(id="theirs", tenant="zeta")}


async def test_routing_set_is_stored_and_a_restart_reads_it_back(tmp_path: Path):
    store = SqliteStore.open(tmp_path / "trunkline.db")
    routes = InboundRoutes(store, TRUNKS, agents=["sales"], clock=lambda: 1800.0)
    await routes.load()
    assert routes.routing("acme", "carrier") is None  # no routing: the trunk rejects
    stored = await routes.set(InboundRouting("acme", "carrier", InboundRule.HANDLE_AI, agent_id="sales"))
    assert stored.updated_ms == 1_800_000 and routes.routing("acme", "carrier") == stored
    await store.close()

    reopened = SqliteStore.open(tmp_path / "trunkline.db")
    try:
        again = InboundRoutes(reopened, TRUNKS, agents=["sales"])
        await again.load(initial=[InboundRouting("acme", "carrier", InboundRule.REJECT)])
        assert again.routing("acme", "carrier") == stored  # the API's routing beats the config's seed
    finally:
        await reopened.close()


async def test_the_configs_routing_seeds_a_trunk_never_routed(store):
    routes = InboundRoutes(store, TRUNKS)
    seed = InboundRouting("acme", "carrier", InboundRule.PLAY_AND_HANGUP, audio_url="/srv/closed.wav")
    await routes.load(initial=[seed])
    assert routes.routing("acme", "carrier") == seed


async def test_another_tenants_trunk_is_an_invalid_trunk_and_nothing_is_stored(store):
    routes = InboundRoutes(store, TRUNKS)
    for trunk in ("theirs", "nowhere"):
        with pytest.raises(CallError) as refused:
            await routes.set(InboundRouting("acme", trunk, InboundRule.REJECT))
        assert refused.value.code is ErrorCode.ERR_INVALID_TRUNK
    assert await store.inbound_routings() == []


@pytest.mark.parametrize("routing, problem", [
    (InboundRouting("acme", "carrier", InboundRule.PLAY_AND_HANGUP, audio_url="closed.wav"), "PLAY_AND_HANGUP needs audio_url"),
    (InboundRouting("acme", "carrier", InboundRule.NOTIFY_AND_HANGUP, webhook_url="ftp://x"), "NOTIFY_AND_HANGUP needs webhook_url"),
    (InboundRouting("acme", "carrier", InboundRule.HANDLE_AI), "HANDLE_AI needs ai_websocket_url"),
    (InboundRouting("acme", "carrier", InboundRule.HANDLE_AI, agent_id="nobody"), "unknown agent 'nobody'"),
    (InboundRouting("acme", "carrier", InboundRule.HANDLE_AI, ai_websocket_url="http://bot"), "must be ws:// or wss://"),
])
async def test_a_rule_missing_what_it_needs_is_refused_naming_it(store, routing, problem):
    routes = InboundRoutes(store, TRUNKS, agents=["sales"])
    with pytest.raises(CallError, match=problem) as refused:
        await routes.set(routing)
    assert refused.value.code is ErrorCode.ERR_VALIDATION_FAILED
    assert routes.routing("acme", "carrier") is None
