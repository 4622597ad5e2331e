"""The WebTransport client against the reference echo agent, over real QUIC on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import wait_until
from trunkline.ai.events import (
    AgentAudio,
    AgentClear,
    AgentDtmf,
    AgentEvent,
    AgentHangup,
    AgentMark,
    AgentTransfer,
    CallInfo,
)
from trunkline.ai.quic_protocol import pack_audio
from trunkline.ai.webtransport import AgentCall, WebTransportAgentClient
from trunkline.certs import CertificateMaterial
from trunkline.media.dtmf import ToneDetector, ToneGenerator



@dataclass
class Recorder:
    """One call's callbacks, collected."""

    events: list[AgentEvent] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def audio(self) -> bytes:
        return b"".join(e.audio for e in self.of(AgentAudio))


def info(n: int) -> CallInfo:
    return CallInfo(f"CA{n}", f"MZ{n}", f"+1555000{n}", "+15559999", "trunk-a", "tenant-a", "agent-a")


def open_call(client: WebTransportAgentClient, n: int, **params: str) -> tuple[AgentCall, Recorder]:
    rec = Recorder()
    call = client.open_call(info(n), params, on_event=rec.events.append, on_closed=rec.closed.append)
    return call, rec


@pytest.fixture
async def client(agent_server: Any, certificate: CertificateMaterial) -> AsyncIterator[WebTransportAgentClient]:
    c = WebTransportAgentClient(agent_server.url, verify=str(certificate.cert_path))
    await c.connect()
    yield c
    await c.close()


async def test_two_calls_on_one_session_each_hear_their_own_echo(client: WebTransportAgentClient,
                                                                agent_server: Any) -> None:
    (call_a, rec_a), (call_b, rec_b) = open_call(client, 1, lang="en"), open_call(client, 2)
    assert call_a.call_id != call_b.call_id
    tone_a, tone_b = ToneGenerator((600.0,), 8000), ToneGenerator((1500.0,), 8000)
    await wait_until(lambda: len(agent_server.jobs) == 2)  # job_assign first, so no early frame is dropped
    for _ in range(25):
        call_a.send_audio(tone_a.generate(160))
        call_b.send_audio(tone_b.generate(160))
        await asyncio.sleep(0.005)
    await wait_until(lambda: len(rec_a.audio()) >= 20 * 320 and len(rec_b.audio()) >= 20 * 320)

    assert len(agent_server.sessions) == 1  # multiplexed, not one session per call
    jobs = {job.assign.call_sid: job for job in agent_server.jobs}
    assert jobs["CA1"].assign.call_id == call_a.call_id and jobs["CA2"].assign.call_id == call_b.call_id
    assert jobs["CA1"].assign.sample_rate == 16000
    assert jobs["CA1"].assign.custom_parameters == {"lang": "en"}
    assert jobs["CA1"].assign.call_from == "+15550001" and jobs["CA1"].assign.trunk_id == "trunk-a"

    hears_a, hears_b = ToneDetector(600.0, 8000), ToneDetector(1500.0, 8000)
    for pcm, own, other in ((rec_a.audio(), hears_a, hears_b), (rec_b.audio(), hears_b, hears_a)):
        frames = [pcm[i : i + 320] for i in range(320, len(pcm) - 319, 320)]  # skip resampler warm-up
        assert frames and all(own.detect(f) for f in frames)
        assert not any(other.detect(f) for f in frames)
    assert not rec_a.closed and not rec_b.closed


async def test_marks_round_trip(client: WebTransportAgentClient, agent_server: Any) -> None:
    call, rec = open_call(client, 1, script="20:mark=greeting 40:flush 60:mark=bye")
    await wait_until(lambda: len(rec.of(AgentMark)) == 2)
    assert rec.events == [AgentMark("greeting"), AgentMark("bye")]  # the bare flush makes no event
    for mark in rec.of(AgentMark):
        call.mark_played(mark.name)
    await wait_until(lambda: agent_server.jobs[0].playouts == ["greeting", "bye"])


async def test_agent_initiated_events_arrive_in_order(client: WebTransportAgentClient) -> None:
    _, rec = open_call(client, 1, script="20:clear 40:dtmf=12# 60:transfer=sip:bob@example.com")
    await wait_until(lambda: len(rec.events) == 3)
    assert rec.events == [AgentClear(), AgentDtmf("12#"), AgentTransfer("sip:bob@example.com")]


async def test_agent_shutdown_is_a_hangup_and_close_releases_the_call(client: WebTransportAgentClient,
                                                                      agent_server: Any) -> None:
    call, rec = open_call(client, 1, script="30:hangup 400:clear")
    await wait_until(lambda: rec.events == [AgentHangup()])
    call.close()
    await wait_until(lambda: agent_server.jobs[0].ended)
    await asyncio.sleep(0.45)  # the agent's later step is cancelled with the job; nothing more arrives
    assert rec.events == [AgentHangup()] and not rec.closed
    call.send_audio(bytes(320))  # a no-op on a closed call, not an error


async def test_gateway_tells_the_agent_about_dtmf_and_barge_in(client: WebTransportAgentClient,
                                                                 agent_server: Any) -> None:
    call, _ = open_call(client, 1)
    call.send_dtmf("5")
    call.send_dtmf("#")
    call.barge_in()
    await wait_until(lambda: bool(agent_server.jobs) and agent_server.jobs[0].barge_ins == 1)
    assert agent_server.jobs[0].caller_digits == "5#"
    with pytest.raises(ValueError):
        call.send_dtmf("x")


async def test_malformed_agent_input_is_dropped_and_the_session_goes_on(
    client: WebTransportAgentClient, agent_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trunkline.ai.webtransport")
    call, rec = open_call(client, 1)
    await wait_until(lambda: len(agent_server.sessions) == 1 and bool(agent_server.jobs))
    agent = agent_server.sessions[0]
    agent.send_datagram(b"\x01\x01")  # short
    agent.send_datagram(pack_audio(call.call_id, 0, bytes(100)))  # wrong size
    agent.send_control(b'garbage\n{"type":"dance","call_id":0}\n{"type":"clear","call_id":%d}\n' % call.call_id)
    await wait_until(lambda: rec.events == [AgentClear()])
    call.send_audio(bytes(320))
    call.send_audio(bytes(320))
    await wait_until(lambda: bool(rec.of(AgentAudio)))
    assert client.connected and not rec.closed
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("dropped control line" in w for w in warnings) == 2
    assert sum("dropped datagram" in w for w in warnings) == 1  # the second bad one is only counted


async def test_a_dropped_server_closes_every_open_call(client: WebTransportAgentClient,
                                                       agent_server: Any) -> None:
    (_, rec_a), (_, rec_b) = open_call(client, 1), open_call(client, 2)
    (ended, rec_ended) = open_call(client, 3)
    ended.close()
    await wait_until(lambda: len(agent_server.jobs) == 3)
    agent_server.close()
    await wait_until(lambda: bool(rec_a.closed and rec_b.closed))
    assert len(rec_a.closed) == 1 and rec_a.closed[0].startswith("connection closed")
    assert rec_b.closed == rec_a.closed
    assert not rec_ended.closed  # a call the gateway already ended is not told again
    assert not client.connected and client.closed_reason == rec_a.closed[0]
    with pytest.raises(ConnectionError):
        open_call(client, 4)


async def test_client_close_ends_calls_and_tells_them(agent_server: Any, certificate: CertificateMaterial) -> None:
    client = WebTransportAgentClient(agent_server.url, verify=str(certificate.cert_path))
    await client.connect()
    _, rec = open_call(client, 1)
    await wait_until(lambda: bool(agent_server.jobs))
    await client.close()
    assert rec.closed == ["client closed"]
    await wait_until(lambda: agent_server.jobs[0].ended)


class _Relay(asyncio.DatagramProtocol):
    """A UDP hop between client and server that a test can cut, like a crashed host or a dead link."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.client: tuple[str, int] | None = None
        self.cut = False
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.cut or self.transport is None:
            return
        if addr == self.server:
            if self.client is not None:
                self.transport.sendto(data, self.client)
        else:
            self.client = addr
            self.transport.sendto(data, self.server)


async def test_a_silently_dead_agent_is_noticed_by_the_idle_timeout(agent_server: Any,
                                                                    certificate: CertificateMaterial) -> None:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: _Relay(("127.0.0.1", agent_server.port)), local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        client = WebTransportAgentClient(f"quic://127.0.0.1:{port}/agent", verify=str(certificate.cert_path),
                                         idle_timeout=1.0)
        await client.connect()
        _, rec = open_call(client, 1)
        await asyncio.sleep(1.5)  # idle longer than the timeout: the keepalive must hold the session up
        assert client.connected and not rec.closed
        relay.cut = True
        await wait_until(lambda: bool(rec.closed), timeout=5.0)
        assert not client.connected
        await client.close()
    finally:
        transport.close()


async def test_connect_failures_raise_connection_error(agent_server: Any, certificate: CertificateMaterial) -> None:
    wrong_path = WebTransportAgentClient(agent_server.url.replace("/agent", "/nope"), verify=str(certificate.cert_path))
    with pytest.raises(ConnectionError, match="404"):
        await wrong_path.connect()
    untrusted = WebTransportAgentClient(agent_server.url, verify=True)  # self-signed: not in the system store
    with pytest.raises(ConnectionError):
        await untrusted.connect()
    with pytest.raises(ValueError):
        WebTransportAgentClient("wss://127.0.0.1/agent")
