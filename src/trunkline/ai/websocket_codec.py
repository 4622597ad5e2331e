"""A sans-I/O WebSocket client (RFC 6455): the opening handshake, then frames both ways.

Why not websockets' own sans-I/O protocol, which carried this before: measured with
``bench/ai.py --profile``, its generator-driven parser and per-frame ``Frame`` objects were the
largest piece of Python work per audio frame after the syscalls, and an agent connection carries
50 messages a second each way for every call. This codec does what an agent link needs and no
more: no extensions (so compression is off, as the Twilio protocol expects), whole messages only
(fragments are reassembled), pings answered, the closing handshake, and every protocol violation
turned into a close with the RFC's status code. websockets remains the server side of the tests and
the demo, so each side is checked against an independent implementation.

Feed it bytes with :meth:`WebSocketClient.receive`, which returns events; write what
:meth:`WebSocketClient.handshake`, :meth:`text`, :meth:`binary` and :meth:`close` return, and
after each ``receive`` whatever :meth:`data_to_send` holds (pongs, the answer to a close).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_RESPONSE_HEAD = 16 * 1024
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MEDIUM = struct.Struct("!H")
_LARGE = struct.Struct("!Q")
_HEAD_SMALL = struct.Struct("!BB4s")  # FIN+opcode, MASK+length < 126, masking key
_HEAD_MEDIUM = struct.Struct("!BBH4s")
_HEAD_LARGE = struct.Struct("!BBQ4s")
_MASKS_PER_DRAW = 1024
#: Payload sizes whose repeated-key multiplier is cached; audio messages come in a few sizes.
_LANE_CACHE_LIMIT = 256
_LANE_CACHE_MAX_BYTES = 16 * 1024


class WebSocketError(ValueError):
    """A URL this client cannot connect to."""


@dataclass(frozen=True)
class WebSocketTarget:
    host: str
    port: int
    resource: str
    secure: bool

    @classmethod
    def parse(cls, url: str) -> WebSocketTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise WebSocketError(f"not a ws:// or wss:// URL: {url!r}")
        secure = parts.scheme == "wss"
        try:
            port = parts.port or (443 if secure else 80)
        except ValueError:
            raise WebSocketError(f"bad port in {url!r}") from None
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, resource, secure)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.secure else 80) else f"{host}:{self.port}"


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"  # we sent a close and wait for the server's
    CLOSED = "closed"


# Module-level aliases for the per-frame checks: an Enum member looked up on its class costs several
# times a global (EnumType's attribute lookup), and receive() checks the state per frame.
_CONNECTING, _OPEN, _CLOSING, _CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED


@dataclass(frozen=True)
class Opened:
    """The server accepted the handshake."""


@dataclass(slots=True)
class Message:
    """One whole message. Not frozen: one is made per audio frame, and a frozen dataclass's
    ``__init__`` costs several times a plain one's."""

    data: bytes
    text: bool


@dataclass(frozen=True)
class Closed:
    """The connection is over for WebSocket purposes; the transport can be closed. ``code`` is the
    server's close code (1005 when it gave none, 1006 when it never sent one), or ours when we
    failed the connection; ``refused`` marks a handshake the server did not accept."""

    code: int
    reason: str
    refused: bool = False


Event = Opened | Message | Closed


class WebSocketClient:
    def __init__(self, target: WebSocketTarget, *, max_size: int = 4 << 20) -> None:
        self.target = target
        self.max_size = max_size
        self.state = _CONNECTING
        self._key = base64.b64encode(os.urandom(16))
        self._pending = b""  # received bytes not yet a whole response head or frame
        self._outgoing: list[bytes] = []
        self._fragments: bytearray | None = None
        self._fragments_text = False
        self._masks = b""
        self._mask_at = 0

    # --- opening handshake --------------------------------------------------------------------

    def handshake(self) -> bytes:
        return (
            f"GET {self.target.resource} HTTP/1.1\r\n"
            f"Host: {self.target.host_header}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "User-Agent: trunkline\r\n"
            "\r\n"
        ).encode()

    def _read_response(self, data: bytes) -> tuple[list[Event], bytes]:
        """The server's handshake response, if it is all there; returns what follows it."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > _MAX_RESPONSE_HEAD:
                return self._refuse("the handshake response is too long"), b""
            return [], data
        head = data[:end].decode("latin-1")
        rest = data[end + 4 :]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            return self._refuse(f"not an HTTP response: {status_line[:80]!r}"), b""
        if parts[1] != "101":
            return self._refuse(f"HTTP {' '.join(parts[1:])}"), b""
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if headers.get("upgrade", "").lower() != "websocket":
            return self._refuse("the response does not upgrade to websocket"), b""
        if "upgrade" not in [token.strip().lower() for token in headers.get("connection", "").split(",")]:
            return self._refuse("the response's Connection header lacks 'upgrade'"), b""
        if headers.get("sec-websocket-accept") != expected:
            return self._refuse("wrong Sec-WebSocket-Accept"), b""
        if headers.get("sec-websocket-extensions"):
            return self._refuse("the server chose an extension that was not offered"), b""
        self.state = _OPEN
        return [Opened()], rest

    def _refuse(self, reason: str) -> list[Event]:
        self.state = _CLOSED
        return [Closed(1006, f"handshake refused: {reason}", refused=True)]

    # --- receiving ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        if self.state is _CLOSED:
            return []
        if self._pending:
            data = self._pending + data
            self._pending = b""
        events: list[Event] = []
        if self.state is _CONNECTING:
            events, data = self._read_response(data)
            if self.state is _CONNECTING:
                self._pending = data
                return events
        # Usually ``data`` is exactly one frame: parse it in place, copying only the payload.
        size = len(data)
        pos = 0
        while self.state is not _CLOSED and size - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = _MEDIUM.unpack_from(data, pos + 2)
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = _LARGE.unpack_from(data, pos + 2)
                start = pos + 10
            if second & 0x80:
                events.append(self._fail(1002, "the server masked a frame"))
                break
            if length > self.max_size:
                events.append(self._fail(1009, f"a frame of {length} bytes exceeds {self.max_size}"))
                break
            end = start + length
            if size < end:
                break
            pos = end
            if (first == 0x81 or first == 0x82) and self._fragments is None:  # a whole text/binary message
                events.append(Message(data[start:end], first == 0x81))
                continue
            event = self._frame(first, data[start:end])
            if event is not None:
                events.append(event)
        if pos < size and self.state is not _CLOSED:
            self._pending = data[pos:]
        return events

    def _frame(self, first: int, payload: bytes) -> Event | None:
        fin, opcode = first & 0x80, first & 0x0F
        if first & 0x70:
            return self._fail(1002, "reserved bits set (no extension was negotiated)")
        if opcode in (_TEXT, _BINARY):
            if self._fragments is not None:
                return self._fail(1002, "a new message began inside a fragmented one")
            if fin:
                return Message(payload, opcode == _TEXT)
            self._fragments, self._fragments_text = bytearray(payload), opcode == _TEXT
            return None
        if opcode == _CONT:
            fragments = self._fragments
            if fragments is None:
                return self._fail(1002, "a continuation frame with no message to continue")
            fragments += payload
            if len(fragments) > self.max_size:
                return self._fail(1009, f"a message exceeds {self.max_size} bytes")
            if not fin:
                return None
            self._fragments = None
            return Message(bytes(fragments), self._fragments_text)
        if opcode not in (_CLOSE, _PING, _PONG):
            return self._fail(1002, f"unknown opcode {opcode}")
        if not fin or len(payload) > 125:
            return self._fail(1002, "a control frame was fragmented or longer than 125 bytes")
        if opcode == _PING:
            if self.state is _OPEN:
                self._outgoing.append(self._frame_bytes(_PONG, payload))
            return None
        if opcode == _PONG:
            return None
        return self._closed_by_server(payload)

    def _closed_by_server(self, payload: bytes) -> Closed:
        if len(payload) >= 2:
            (code,) = _MEDIUM.unpack_from(payload)
            reason = payload[2:].decode("utf-8", "replace")
        else:
            code, reason = 1005, ""
        if self.state is _OPEN:  # echo it, as the closing handshake asks
            self._outgoing.append(self._frame_bytes(_CLOSE, payload[:2]))
        self.state = _CLOSED
        return Closed(code, reason)

    def _fail(self, code: int, reason: str) -> Closed:
        if self.state is _OPEN:
            self._outgoing.append(self._frame_bytes(_CLOSE, _MEDIUM.pack(code) + reason.encode()[:120]))
        self.state = _CLOSED
        return Closed(code, reason)

    def receive_eof(self) -> list[Event]:
        if self.state is _CLOSED:
            return []
        refused = self.state is _CONNECTING
        self.state = _CLOSED
        return [Closed(1006, "the connection closed without a close frame", refused=refused)]

    def data_to_send(self) -> list[bytes]:
        """Replies the protocol owes the server after :meth:`receive` (pongs, a close echo); asked
        after every read, so the usual answer, nothing, allocates nothing."""
        out = self._outgoing
        if out:
            self._outgoing = []
        return out

    # --- sending ------------------------------------------------------------------------------

    def text(self, payload: bytes) -> bytes:
        """One text message (``payload`` is already UTF-8)."""
        return self._frame_bytes(_TEXT, payload)

    def binary(self, payload: bytes) -> bytes:
        return self._frame_bytes(_BINARY, payload)

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start the closing handshake; b"" if it is already closing or closed."""
        if self.state is not _OPEN:
            return b""
        self.state = _CLOSING
        return self._frame_bytes(_CLOSE, _MEDIUM.pack(code) + reason.encode()[:120])

    def _frame_bytes(self, opcode: int, payload: bytes) -> bytes:
        length = len(payload)
        # Masking keys must be unpredictable (RFC 6455 §5.3); they are drawn from the OS in batches,
        # since a getrandom call per frame costs more than the masking itself.
        at, masks = self._mask_at, self._masks
        if at >= len(masks):
            self._masks = masks = os.urandom(4 * _MASKS_PER_DRAW)
            at = 0
        self._mask_at = at + 4
        mask = masks[at : at + 4]
        if length < 126:
            head = _HEAD_SMALL.pack(0x80 | opcode, 0x80 | length, mask)
        elif length < 0x10000:
            head = _HEAD_MEDIUM.pack(0x80 | opcode, 0x80 | 126, length, mask)
        else:
            head = _HEAD_LARGE.pack(0x80 | opcode, 0x80 | 127, length, mask)
        if not length:
            return head
        return head + _apply_mask(payload, mask)


_lanes: dict[int, tuple[int, int]] = {}


def _masked(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR the 4-byte ``mask`` repeated (RFC 6455 §5.3), as one big-integer XOR.

    The repeated key is the key times 1 + 2**32 + 2**64 + ... (no carries: each 4-byte lane gets
    exactly the key), truncated to the payload's length; both constants are cached per length,
    which halves the cost against building the repeated key as bytes for every frame.
    """
    length = len(payload)
    lanes = _lanes.get(length)
    if lanes is None:
        lanes = (int.from_bytes(b"\x01\x00\x00\x00" * ((length + 3) // 4), "little"), (1 << (8 * length)) - 1)
        if length <= _LANE_CACHE_MAX_BYTES and len(_lanes) < _LANE_CACHE_LIMIT:
            _lanes[length] = lanes
    multiplier, truncate = lanes
    key = int.from_bytes(mask, "little") * multiplier & truncate
    return (int.from_bytes(payload, "little") ^ key).to_bytes(length, "little")


try:
    # websockets' C helper (in its binary wheels) masks a frame ten times faster than the big-integer
    # XOR; websockets is a dependency anyway (the demo agent), so it is taken when it is there.
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # a pure-Python install of websockets
    _apply_mask = _masked
