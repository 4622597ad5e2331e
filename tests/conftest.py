"""Shared fixtures: a real gateway on a loopback port, and clients connected to it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trunkline.config import config_from_dict
from trunkline.gateway import Gateway
from trunkline.sdk import Client
from trunkline.store import SqliteStore


@pytest.fixture
async def start_gateway(tmp_path: Path):
    """Factory: ``await start_gateway({...config overrides...})`` -> a started Gateway."""
    started: list[Gateway] = []

    async def start(raw: dict[str, Any] | None = None) -> Gateway:
        raw = dict(raw or {})
        server = {"quic_listen": "127.0.0.1:0", "data_dir": str(tmp_path / "data"), **raw.pop("server", {})}
        sip = {"listen": "127.0.0.1:0", **raw.pop("sip", {})}
        gateway = Gateway(config_from_dict({"server": server, "sip": sip, **raw}, base_dir=tmp_path))
        await gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.close()


@pytest.fixture
async def store(tmp_path: Path):
    """An embedded store in the test's folder, closed afterwards."""
    opened = SqliteStore.open(tmp_path / "trunkline.db")
    yield opened
    await opened.close()


@pytest.fixture
async def gateway(start_gateway) -> Gateway:
    return await start_gateway()


def client_for(gateway: Gateway, **kwargs: Any) -> Client:
    host, port = gateway.rpc.address
    return Client.connect(f"{host}:{port}", ca_file=gateway.certificate.cert_path, **kwargs)


@pytest.fixture
async def client(gateway: Gateway):
    async with client_for(gateway) as c:
        yield c


async def wait_until(condition: Callable[[], bool], what: str = "the condition", timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; the timeout only keeps a broken peer from hanging the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)
