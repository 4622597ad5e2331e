"""PROTOCOL.md §5 against hostile peers: a connection that has not authenticated gets no resources,
and an authenticated one holds a bounded amount of unfinished requests."""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.cli.test_cli import free_udp_port
from tests.conftest import wait_until
from tests.rawquic import RawProtocol, raw_connection
from trunkline.auth.service_account import create_service_account
from trunkline.enums import ErrorCode
from trunkline.wire import METHODS_BY_NAME, FrameDecoder, encode_frame
from trunkline.wire import dtos as d

AUTH = METHODS_BY_NAME["Authenticate"].method_id
EVENTS = METHODS_BY_NAME["StreamEvents"].method_id
UNAUTHORIZED, RATE_LIMITED = 0x107, 0x103


@pytest.fixture
async def jwt_gateway(start_gateway):
    acme, acme_pub = create_service_account("acme", "k1", "ES256")
    gateway = await start_gateway({
        "server": {"unauthenticated_request_timeout_s": 1},
        "auth": {"mode": "jwt"},
        "tenants": [{"id": "acme", "keys": [{"kid": "k1", "public_key_pem": acme_pub}]}],
    })
    return gateway, acme


def auth_frame(token: str, cffi: bool = False) -> bytes:
    """An Authenticate request; ``cffi`` frames it the C-FFI core's way (length = 8 + n)."""
    envelope = d.AuthRequest(token=token).to_bytes()
    return struct.pack("<II", (8 if cffi else 4) + len(envelope), AUTH) + envelope


def padded_events_frame(size: int) -> bytes:
    """A StreamEvents request whose envelope is ``size`` bytes: no fields, then padding a reader skips."""
    envelope = struct.pack("<BBi", 0, 0, 0) + bytes(size - 6)
    return struct.pack("<II", 4 + len(envelope), EVENTS) + envelope


def write(raw: RawProtocol, stream_id: int, data: bytes, fin: bool) -> None:
    raw._quic.send_stream_data(stream_id, data, end_stream=fin)
    raw.transmit()


def taken(raw: RawProtocol, stream_id: int) -> Callable[[], bool]:
    """Whether every byte written on the stream was acknowledged, so the gateway has taken them all."""
    sender = raw._quic._streams[stream_id].sender
    return lambda: sender._buffer_start == sender._buffer_stop


def auth_response(data: bytes) -> d.AuthResponse:
    (_, envelope), = FrameDecoder().feed(data)
    return d.AuthResponse.from_bytes(envelope)


async def test_before_authenticate_a_connection_has_four_requests_in_flight(jwt_gateway):
    gateway, _ = jwt_gateway
    frame = auth_frame("x" * 100)
    async with raw_connection(gateway) as raw:
        held = [raw.send(frame[:50], fin=False) for _ in range(4)]
        fifth = raw.send(frame[:50], fin=False)
        assert await raw.outcome(fifth) == ("reset", UNAUTHORIZED)
        write(raw, held[0], frame[50:], fin=True)  # the four were kept: one finished is answered
        kind, data = await raw.outcome(held[0])
        assert (kind, auth_response(data).error_message) == ("data", "malformed token")


async def test_before_authenticate_a_request_above_64_kib_is_reset_at_once(jwt_gateway):
    gateway, _ = jwt_gateway
    token = "x" * ((64 << 10) - 10)  # an envelope of exactly 64 KiB: v, cv, size, string length
    async with raw_connection(gateway) as raw:
        for cffi in (False, True):  # at the limit, under either length convention: served
            kind, data = await raw.outcome(raw.send(auth_frame(token, cffi)))
            assert (kind, auth_response(data).error_code) == ("data", ErrorCode.ERR_UNAUTHORIZED)
        claims_more = raw.send(auth_frame(token + "x", cffi=True)[:8], fin=False)  # the header alone
        assert await raw.outcome(claims_more) == ("reset", UNAUTHORIZED)


async def test_before_authenticate_an_unfinished_request_is_reset_at_its_deadline(jwt_gateway):
    gateway, acme = jwt_gateway
    frame = auth_frame("x" * 100)
    async with raw_connection(gateway) as member, raw_connection(gateway) as stranger:
        kind, data = await member.outcome(member.send(auth_frame(acme.sign_token(time.time()))))
        assert (kind, auth_response(data).error_code) == ("data", ErrorCode.SUCCESS)
        kept = member.send(frame[:50], fin=False)  # opened after Authenticate: no deadline
        late = stranger.send(frame[:50], fin=False)
        assert await stranger.outcome(late, timeout=10) == ("reset", UNAUTHORIZED)
        write(member, kept, frame[50:], fin=True)  # older than the stranger's, and still served
        assert (await member.outcome(kept))[0] == "data"


async def test_after_authenticate_unfinished_request_bytes_are_capped(start_gateway):
    gateway = await start_gateway({"server": {"pending_request_bytes": 2 << 20}})
    frame, part = padded_events_frame(1_000_000), 900_000
    async with raw_connection(gateway) as raw:
        first = raw.send(frame[:part], fin=False)
        await wait_until(taken(raw, first), "the gateway to take the bytes")
        second = raw.send(frame[:part], fin=False)
        await wait_until(taken(raw, second), "the gateway to take the bytes")
        third = raw.send(frame[:part], fin=False)  # 2.7 MB unfinished: over the cap
        assert await raw.outcome(third) == ("reset", RATE_LIMITED)
        write(raw, first, frame[part:], fin=True)  # those under the cap are still served
        assert await raw.outcome(first) == ("data", encode_frame(EVENTS, d.Empty()))


@pytest.fixture
async def served_jwt_gateway(tmp_path):
    """``trunkline serve`` in jwt mode in its own process, so its RSS is the gateway's alone."""
    _, acme_pub = create_service_account("acme", "k1", "ES256")
    port = free_udp_port()
    (tmp_path / "trunkline.toml").write_text(
        f'[server]\nquic_listen = "127.0.0.1:{port}"\n[sip]\nlisten = "127.0.0.1:0"\n[auth]\nmode = "jwt"\n'
        f"[[tenants]]\nid = \"acme\"\nkeys = [{{ kid = \"k1\", public_key_pem = '''{acme_pub}''' }}]\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline", "serve", "--config", "trunkline.toml", cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output = b""
        while b"serving TeleQuick RPC" not in output:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"serve exited: {output.decode()}"
            output += line
        asyncio.get_running_loop().create_task(proc.stdout.read())  # keep its pipe drained
        yield SimpleNamespace(rpc=SimpleNamespace(address=("127.0.0.1", port))), proc.pid
    finally:
        proc.terminate()
        await proc.wait()


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024


async def rss_holding_unfinished_requests(gateway, pid: int, count: int) -> int:
    """Open ``count`` streams that each claim a 1 MiB request and send it all but never finish;
    once the gateway has either refused each stream or taken every byte of it, its RSS while the
    connection is still open."""
    unfinished = padded_events_frame((1 << 20) - 4)[:-1]  # the largest valid request, one byte short
    async with raw_connection(gateway) as raw:
        streams = [raw.send(unfinished, fin=False) for _ in range(count)]
        settled = [(raw._future(stream_id).done, taken(raw, stream_id)) for stream_id in streams]
        await wait_until(lambda: all(refused() or took() for refused, took in settled),
                         "the gateway to refuse or take every request", timeout=120)
        kind, _ = await raw.outcome(raw.send(auth_frame("not-a-jwt")))  # and it still answers
        assert kind == "data"
        return rss_bytes(pid)


async def test_unfinished_requests_before_authenticate_leave_memory_flat(served_jwt_gateway):
    gateway, pid = served_jwt_gateway
    await rss_holding_unfinished_requests(gateway, pid, 10)  # the first connection's allocations, outside the count
    before = rss_bytes(pid)
    grown = await rss_holding_unfinished_requests(gateway, pid, 100) - before
    assert grown < 8 << 20, f"RSS grew {grown / (1 << 20):.1f} MiB"
