"""An agent over WebSocket, on websockets' sans-I/O protocol and a plain asyncio transport.

Why not the websockets asyncio client: its ``send`` is a coroutine, so 50 frames a second per call
would each need a task or an await inside the media tick. With the sans-I/O protocol a frame is
encoded and written synchronously; flow control is checked on the transport's write buffer, and
audio for an agent that stops reading is dropped (and counted) instead of piling up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Callable

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from trunkline.ai.dialect import AgentDialect
from trunkline.ai.events import AgentEvent, AgentProtocolError
from trunkline.ai.link import AgentUnreachable

log = logging.getLogger(__name__)

#: Bytes waiting for the agent before caller audio is dropped (~6 s of Twilio media messages).
WRITE_BUFFER_LIMIT = 256 * 1024


class WebSocketLink(asyncio.Protocol):
    def __init__(self, url: str, dialect: AgentDialect, connect_timeout: float = 5.0, ca_file: str | None = None) -> None:
        self.url = url
        self.ca_file = ca_file
        self.dialect = dialect
        self.connect_timeout = connect_timeout
        self.on_event: Callable[[AgentEvent], None] | None = None
        self.on_closed: Callable[[str], None] | None = None
        self.dropped_frames = 0
        self.protocol_errors = 0
        self._uri = parse_uri(url)
        self._ws = ClientProtocol(self._uri, max_size=4 << 20)  # no extensions: compression off
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._closing = False
        self._closed = False

    async def open(self) -> None:
        uri = self._uri
        loop = asyncio.get_running_loop()
        self._handshake = loop.create_future()
        context = ssl.create_default_context(cafile=self.ca_file) if uri.secure else None
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: self, uri.host, uri.port, ssl=context), self.connect_timeout)
            await asyncio.wait_for(asyncio.shield(self._handshake), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self._abort()
            raise AgentUnreachable(f"{self.url}: {exc or 'timed out'}") from None
        for message in self.dialect.opening():
            self._send(message)

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_BUFFER_LIMIT)  # type: ignore[attr-defined]
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "agent closed the connection")

    # --- inbound --------------------------------------------------------------------------------

    def _process(self) -> None:
        for event in self._ws.events_received():
            if isinstance(event, Response):
                self._handshake_done()
                continue
            if event.opcode is Opcode.TEXT:
                self._deliver(event.data.decode("utf-8", "replace"))
            elif event.opcode is Opcode.BINARY:
                self._deliver(bytes(event.data))
            elif event.opcode is Opcode.CLOSE:
                self._finish("agent closed the WebSocket")
        self._flush()  # pongs and close replies
        if self._ws.close_expected() and self._transport is not None:
            self._transport.close()

    def _handshake_done(self) -> None:
        if self._handshake is None or self._handshake.done():
            return
        if self._ws.handshake_exc is not None:
            self._handshake.set_exception(OSError(f"handshake refused: {self._ws.handshake_exc}"))
        else:
            self._handshake.set_result(None)

    def _deliver(self, message: str | bytes) -> None:
        try:
            events = self.dialect.parse(message)
        except AgentProtocolError as exc:
            self.protocol_errors += 1
            log.warning("agent %s: dropped a message: %s", self.url, exc)
            return
        callback = self.on_event
        if callback is not None:
            for event in events:
                callback(event)

    # --- outbound -------------------------------------------------------------------------------

    def send_audio(self, pcm: bytes) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.dropped_frames += 1
            return
        self._send(self.dialect.media(pcm))

    def send_dtmf(self, digit: str) -> None:
        self._send(self.dialect.dtmf(digit))

    def mark_played(self, name: str) -> None:
        self._send(self.dialect.mark_played(name))

    def barge_in(self) -> None:
        self._send(self.dialect.barge_in())

    def close(self) -> None:
        if self._closing:
            return
        for message in self.dialect.closing():
            self._send(message)
        self._closing = True
        if self._ws.state is State.OPEN:
            self._ws.send_close()
            self._flush()
        if self._transport is not None:
            asyncio.get_running_loop().call_later(2.0, self._abort)  # if the agent never answers the close

    def _send(self, message: str | bytes) -> None:
        if self._closing or self._ws.state is not State.OPEN:
            return
        if isinstance(message, str):
            self._ws.send_text(message.encode())
        else:
            self._ws.send_binary(message)
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # websockets asks for a half-close after its close frame
                transport.write_eof()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _finish(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(OSError(reason))
        if not self._closing and self.on_closed is not None:
            self.on_closed(reason)
