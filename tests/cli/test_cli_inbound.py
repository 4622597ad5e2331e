"""Inbound routing set over the RPC is stored before it is acknowledged: it survives kill -9 of the
gateway and its restart, and a restarted gateway routes by it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import TRUNKLINE, free_udp_port, run
from tests.conftest import client_for
from trunkline.calls.inbound import InboundRouting
from trunkline.enums import InboundRule
from trunkline.sdk import InvalidTrunk, ValidationFailed


def serve(workdir: Path, endpoint: str) -> subprocess.Popen:
    proc = subprocess.Popen([*TRUNKLINE, "serve", "--config", "t.toml"], cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while run("--endpoint", endpoint, "--timeout", "2", "buckets", cwd=workdir).returncode:
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.2)
    return proc


def shown(workdir: Path) -> list[dict]:
    result = run("inbound", "show", "--config", "t.toml", "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_routing_set_with_the_cli_survives_kill_9_and_restart(tmp_path: Path):
    port = free_udp_port()
    endpoint = f"127.0.0.1:{port}"
    (tmp_path / "t.toml").write_text(f'[server]\nquic_listen = "{endpoint}"\n[sip]\nlisten = "127.0.0.1:0"\n')
    gateway = serve(tmp_path, endpoint)
    try:
        routed = run("--endpoint", endpoint, "inbound", "set", "carrier", "--rule", "handle-ai",
                     "--ws", "ws://127.0.0.1:9/bot", cwd=tmp_path)
        assert routed.returncode == 0, routed.stderr
        unknown = run("--endpoint", endpoint, "inbound", "set", "nowhere", "--rule", "reject", cwd=tmp_path)
        assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: SetInboundRouting: ERR_INVALID_TRUNK")
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10)
    expected = [{"tenant_id": "local", "trunk_id": "carrier", "rule": "HANDLE_AI", "ai_websocket_url": "ws://127.0.0.1:9/bot"}]
    assert [{k: r[k] for k in expected[0]} for r in shown(tmp_path)] == expected
    gateway = serve(tmp_path, endpoint)  # and it starts again on the same store
    gateway.terminate()
    assert gateway.wait(timeout=10) == 0
    assert [{k: r[k] for k in expected[0]} for r in shown(tmp_path)] == expected


def test_show_where_no_gateway_ran_says_so(tmp_path: Path):
    result = run("inbound", "show", cwd=tmp_path)
    assert result.returncode == 1 and "no gateway ran with this data directory" in result.stderr


async def test_a_restarted_gateway_routes_by_what_was_stored(start_gateway, tmp_path: Path):
    config = {"trunks": [{"id": "carrier", "host": "127.0.0.1", "port": 5070,
                          "inbound": {"rule": "play_and_hangup", "audio_url": "/srv/closed.wav"}}]}
    first = await start_gateway(config)
    assert first.inbound.routing("local", "carrier").rule is InboundRule.PLAY_AND_HANGUP  # the config's seed
    async with client_for(first) as client:
        await client.set_inbound_routing("carrier", InboundRule.NOTIFY_AND_HANGUP, webhook_url="https://crm.example/in")
        with pytest.raises(ValidationFailed):
            await client.set_inbound_routing("carrier", InboundRule.HANDLE_AI)  # no agent, no URL
        with pytest.raises(InvalidTrunk):
            await client.set_inbound_routing("nowhere", InboundRule.REJECT)
    await first.close()
    second = await start_gateway(config)  # same data directory
    routing = second.inbound.routing("local", "carrier")
    assert isinstance(routing, InboundRouting)
    assert (routing.rule, routing.webhook_url) == (InboundRule.NOTIFY_AND_HANGUP, "https://crm.example/in")
