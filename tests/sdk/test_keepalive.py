"""Quiet connections stay up (issue 10): an idle ``trunkline events`` used to resubscribe every time
the QUIC idle timeout closed its connection. Both ends PING now; these tests shorten the idle timeout
and wait several idle periods, then prove the very same connection still carries events."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration

from tests.conftest import client_for, wait_until
from tests.rawquic import RawProtocol
from trunkline.calls.events import CallEvent
from trunkline.enums import EventType
from trunkline.rpc.server import RpcServer, server_configuration
from trunkline.wire import METHODS_BY_NAME, FrameDecoder, encode_frame
from trunkline.wire.methods import CALL_EVENT_METHOD_ID
from trunkline.wire import dtos as d

IDLE_S = 1.0
QUIET_S = 4 * IDLE_S  # several idle periods without a single request or event
EVENTS_ID = METHODS_BY_NAME["StreamEvents"].method_id


def _event(call_sid: str, client_id: str = "") -> CallEvent:
    return CallEvent(call_sid=call_sid, event_type=EventType.CHANNEL_CREATE, status="INITIATED", tenant_id="local",
                     client_id=client_id)


@pytest.fixture
async def short_idle_server(gateway):
    """The gateway's RPC on a second port whose idle timeout is IDLE_S."""
    cert = gateway.certificate
    server = RpcServer(gateway.handlers, gateway.dispatcher,
                       server_configuration(str(cert.cert_path), str(cert.key_path), idle_timeout=IDLE_S))
    await server.start("127.0.0.1", 0)
    yield server
    server.close()


async def _raw_client(server: RpcServer):
    """A client that never PINGs, as the public SDKs do."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=["h3"], idle_timeout=60.0)
    configuration.verify_mode = ssl.CERT_NONE
    return connect(*server.address, configuration=configuration, create_protocol=RawProtocol)


async def test_without_a_subscription_a_silent_client_times_out(short_idle_server):
    """The control: the idle timeout is real, and the gateway does not hold every connection open."""
    async with await _raw_client(short_idle_server) as raw:
        await wait_until(raw._closed.is_set, "the idle timeout to close the connection", timeout=10 * IDLE_S)


async def test_gateway_keeps_a_silent_subscriber_connected(gateway, short_idle_server):
    async with await _raw_client(short_idle_server) as raw:
        stream = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest(client_id="")))
        assert (await raw.outcome(stream))[0] == "data"

        await asyncio.sleep(QUIET_S)
        assert not raw._closed.is_set()
        gateway.events.publish(_event("c-late"))

        await wait_until(lambda: any(s & 0x3 == 0x3 for s in raw.data), "the event stream")
        [(method_id, envelope)] = FrameDecoder().feed(next(buf for s, buf in raw.data.items() if s & 0x3 == 0x3))
        assert (method_id, d.CallEvent.from_bytes(envelope).call_sid) == (CALL_EVENT_METHOD_ID, "c-late")


async def test_sdk_keeps_its_connection_up_without_a_subscription(gateway):
    async with client_for(gateway, idle_timeout=IDLE_S) as client:  # the gateway says 60 s: the client's IDLE_S rules
        await client.authenticate("")
        protocol = client._protocol

        await asyncio.sleep(QUIET_S)

        assert protocol.terminated is None
        assert (await client.authenticate("")).tenant_id == "local"
        assert client._protocol is protocol


async def test_idle_events_do_not_resubscribe_and_a_real_reconnect_is_logged_once(gateway, caplog):
    caplog.set_level(logging.DEBUG, "trunkline.sdk.client")
    async with client_for(gateway, idle_timeout=IDLE_S) as client:
        received: asyncio.Queue = asyncio.Queue()

        async def follow() -> None:
            async for event in client.events():
                received.put_nowait(event.call_sid)

        subscribed = lambda: gateway.events.subscribers("local", client.client_id)  # noqa: E731
        follower = asyncio.create_task(follow())
        await wait_until(subscribed, "the subscription")
        protocol = client._protocol

        await asyncio.sleep(QUIET_S)
        gateway.events.publish(_event("c-quiet", client.client_id))

        assert await asyncio.wait_for(received.get(), 10) == "c-quiet"
        assert client._protocol is protocol and caplog.records == []

        protocol.close()  # a real loss: the stream must come back, and say so once
        await wait_until(lambda: any("resubscribed" in r.getMessage() for r in caplog.records), "the resubscription")
        gateway.events.publish(_event("c-after", client.client_id))
        assert await asyncio.wait_for(received.get(), 10) == "c-after"
        infos = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        assert len(infos) == 1 and infos[0].startswith("event stream lost (") and "resubscribed" in infos[0]
        follower.cancel()
