"""The sans-I/O WebSocket client against websockets' sans-I/O server: two independent implementations
of RFC 6455 talking in memory, plus hand-made bytes for what a well-behaved server never sends."""

from __future__ import annotations

import os
import struct

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from trunkline.ai.websocket_codec import (
    Closed,
    Message,
    Opened,
    State,
    WebSocketClient,
    WebSocketError,
    WebSocketTarget,
    _masked,
)


def pump(server: ServerProtocol) -> bytes:
    return b"".join(server.data_to_send())


def frames_received(server: ServerProtocol) -> list[Frame]:
    return [event for event in server.events_received() if isinstance(event, Frame)]


@pytest.fixture
def pair() -> tuple[WebSocketClient, ServerProtocol]:
    client = WebSocketClient(WebSocketTarget.parse("ws://127.0.0.1:8765/agent?call=1"), max_size=1 << 16)
    server = ServerProtocol()
    server.receive_data(client.handshake())
    (request,) = server.events_received()
    assert isinstance(request, Request) and request.path == "/agent?call=1"
    assert "Sec-WebSocket-Extensions" not in request.headers  # nothing offered: compression stays off
    server.send_response(server.accept(request))
    assert client.receive(pump(server)) == [Opened()]
    assert client.state is State.OPEN
    return client, server


def test_messages_both_ways(pair):
    client, server = pair
    server.receive_data(client.text('{"event":"media"}'.encode()) + client.binary(b"\x00\x01" * 200))
    text, binary = frames_received(server)
    assert (text.opcode, text.data) == (Opcode.TEXT, b'{"event":"media"}')
    assert (binary.opcode, binary.data) == (Opcode.BINARY, b"\x00\x01" * 200)
    server.send_text(b"hello")
    server.send_binary(b"x" * 300)  # 16-bit length
    server.send_binary(b"y" * 70000)  # a 64-bit length, and over max_size
    events = client.receive(pump(server))
    assert events[:2] == [Message(b"hello", True), Message(b"x" * 300, False)]
    assert isinstance(events[2], Closed) and events[2].code == 1009  # 70000 > max_size of 65536
    assert client.state is State.CLOSED
    close_frame = client.data_to_send()
    server.receive_data(b"".join(close_frame))
    (close,) = frames_received(server)
    assert close.opcode is Opcode.CLOSE and struct.unpack("!H", close.data[:2]) == (1009,)


def test_bytes_may_arrive_one_at_a_time(pair):
    client, server = pair
    server.send_text(b"first")
    server.send_binary(b"z" * 1000)
    events = []
    for byte in pump(server):
        events += client.receive(bytes([byte]))
    assert events == [Message(b"first", True), Message(b"z" * 1000, False)]


def test_fragments_are_reassembled_and_pings_answered_in_between(pair):
    client, server = pair
    server.send_text(b"part one, ", fin=False)
    server.send_ping(b"are you there")
    server.send_continuation(b"part two", fin=True)
    assert client.receive(pump(server)) == [Message(b"part one, part two", True)]
    server.receive_data(b"".join(client.data_to_send()))
    (pong,) = frames_received(server)
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")


def test_server_close_is_echoed(pair):
    client, server = pair
    server.send_close(1001, "going away")
    assert client.receive(pump(server)) == [Closed(1001, "going away")]
    server.receive_data(b"".join(client.data_to_send()))
    (echo,) = frames_received(server)
    assert echo.opcode is Opcode.CLOSE and struct.unpack("!H", echo.data) == (1001,)
    assert client.text(b"late") and client.close() == b""  # nothing more to say


def test_our_close_completes_when_the_server_answers(pair):
    client, server = pair
    server.receive_data(client.close())
    (close,) = frames_received(server)
    assert close.opcode is Opcode.CLOSE
    assert client.state is State.CLOSING
    assert client.receive(pump(server)) == [Closed(1000, "")]
    assert client.data_to_send() == []  # a close that answers ours is not echoed again
    assert client.state is State.CLOSED


def test_eof_without_close_frame():
    client = WebSocketClient(WebSocketTarget.parse("ws://h/"))
    assert client.receive_eof() == [Closed(1006, "the connection closed without a close frame", refused=True)]


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "HTTP 403 Forbidden"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", "wrong Sec-WebSocket-Accept"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 101 OK\r\n" + b"X: " + b"a" * 20000, "too long"),
    ],
)
def test_refused_handshakes(response, why):
    client = WebSocketClient(WebSocketTarget.parse("ws://h/"))
    client.handshake()
    (event,) = client.receive(response)
    assert isinstance(event, Closed) and event.refused and why in event.reason
    assert client.state is State.CLOSED


def test_an_extension_the_client_did_not_offer_is_refused():
    client = WebSocketClient(WebSocketTarget.parse("ws://h/"))
    server = ServerProtocol()
    server.receive_data(client.handshake())
    (request,) = server.events_received()
    response = server.accept(request)
    response.headers["Sec-WebSocket-Extensions"] = "permessage-deflate"
    server.send_response(response)
    (event,) = client.receive(pump(server))
    assert isinstance(event, Closed) and event.refused and "extension" in event.reason


def test_frames_in_the_same_segment_as_the_handshake_response_are_kept():
    client = WebSocketClient(WebSocketTarget.parse("ws://h/"))
    server = ServerProtocol()
    server.receive_data(client.handshake())
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    server.send_text(b'{"event":"connected"}')
    assert client.receive(pump(server)) == [Opened(), Message(b'{"event":"connected"}', True)]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (bytes([0x81, 0x82]) + b"mask" + b"hi", 1002),  # servers must not mask
        (bytes([0xC1, 0x02]) + b"hi", 1002),  # RSV1 without a negotiated extension
        (bytes([0x83, 0x00]), 1002),  # reserved opcode
        (bytes([0x80, 0x02]) + b"hi", 1002),  # continuation of nothing
        (bytes([0x09, 0x00]), 1002),  # fragmented ping
        (bytes([0x89, 0x7E]) + struct.pack("!H", 200) + b"p" * 200, 1002),  # ping over 125 bytes
        (bytes([0x01, 0x02]) + b"hi" + bytes([0x81, 0x02]) + b"hi", 1002),  # new message inside a fragmented one
    ],
)
def test_protocol_violations_close_with_the_rfc_code(pair, frame, code):
    client, server = pair
    events = client.receive(frame)
    assert isinstance(events[-1], Closed) and events[-1].code == code
    assert client.receive(bytes([0x81, 0x02]) + b"hi") == []  # nothing after the failure
    server.receive_data(b"".join(client.data_to_send()))
    (close,) = frames_received(server)
    assert close.opcode is Opcode.CLOSE and struct.unpack("!H", close.data[:2]) == (code,)


def test_masking_keys_differ_and_the_server_unmasks_every_size(pair):
    client, server = pair
    # Twice each: the second frame of a size uses the cached repeated key; 20000+ bytes are not cached.
    sizes = [0, 1, 3, 4, 5, 7, 125, 126, 301, 20001, 65535, 65536] * 2
    payloads = [bytes(range(256)) * (n // 256) + bytes(range(n % 256)) for n in sizes]
    server.receive_data(b"".join(client.binary(payload) for payload in payloads))
    assert [f.data for f in frames_received(server)] == payloads
    masks = {client.binary(b"abcd")[2:6] for _ in range(64)}
    assert len(masks) > 60


@pytest.mark.parametrize(
    ("url", "target", "host_header"),
    [
        ("ws://agent.example/", WebSocketTarget("agent.example", 80, "/", False), "agent.example"),
        ("wss://agent.example", WebSocketTarget("agent.example", 443, "/", True), "agent.example"),
        ("ws://127.0.0.1:9000/a/b?x=1", WebSocketTarget("127.0.0.1", 9000, "/a/b?x=1", False), "127.0.0.1:9000"),
        ("ws://[::1]:9000/", WebSocketTarget("::1", 9000, "/", False), "[::1]:9000"),
    ],
)
def test_urls(url, target, host_header):
    parsed = WebSocketTarget.parse(url)
    assert parsed == target and parsed.host_header == host_header


@pytest.mark.parametrize("url", ["http://h/", "ws://", "ws://h:notaport/", "h:80"])
def test_bad_urls(url):
    with pytest.raises(WebSocketError):
        WebSocketTarget.parse(url)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8, 125, 301, 20001])
def test_the_pure_python_masking_matches_the_rfc(size):
    """The fallback when websockets' C helper is missing: XOR with the key repeated."""
    payload, mask = os.urandom(size), os.urandom(4)
    expected = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    assert _masked(payload, mask) == expected
    assert _masked(payload, mask) == expected  # again, from the cached multiplier
