"""An agent over WebSocket: the sans-I/O :mod:`~trunkline.ai.websocket_codec` on a plain asyncio transport.

Why not a coroutine-based client: its ``send`` is a coroutine, so 50 frames a second per call would
each need a task or an await inside the media tick. Here a frame is encoded and written
synchronously; flow control is checked on the transport's write buffer, and audio for an agent that
stops reading is dropped (and counted) instead of piling up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Callable

from trunkline.ai.dialect import AgentDialect
from trunkline.ai.events import AgentEvent, AgentProtocolError
from trunkline.ai.link import AgentUnreachable
from trunkline.ai.websocket_codec import (
    Closed,
    Message,
    Opened,
    State,
    WebSocketClient,
    WebSocketError,
    WebSocketTarget,
)
from trunkline.media.g711 import G711Codec

log = logging.getLogger(__name__)
_OPEN = State.OPEN  # a global is cheaper than an Enum member lookup, and the check runs per frame

#: Bytes waiting for the agent before caller audio is dropped (~6 s of Twilio media messages).
WRITE_BUFFER_LIMIT = 256 * 1024
#: How long the agent gets to answer our close before the connection is cut.
CLOSE_TIMEOUT_S = 2.0


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
        self._ws: WebSocketClient | None = None
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def audio_codec(self) -> G711Codec | None:
        return self.dialect.audio_codec

    async def open(self) -> None:
        try:
            target = WebSocketTarget.parse(self.url)
        except WebSocketError as exc:
            raise AgentUnreachable(str(exc)) from None
        self._ws = WebSocketClient(target, max_size=4 << 20)
        loop = asyncio.get_running_loop()
        self._handshake = loop.create_future()
        context = ssl.create_default_context(cafile=self.ca_file) if target.secure else None
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: self, target.host, target.port, ssl=context), self.connect_timeout)
            await asyncio.wait_for(asyncio.shield(self._handshake), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self._handshake.cancel()  # nobody will wait for it any more
            self._abort()
            raise AgentUnreachable(f"{self.url}: {exc or 'timed out'}") from None
        for message in self.dialect.opening():
            self._send(message)

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_BUFFER_LIMIT)  # type: ignore[attr-defined]
        assert self._ws is not None  # open() made it before connecting
        transport.write(self._ws.handshake())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        assert self._ws is not None
        self._process(self._ws.receive(data))

    def eof_received(self) -> bool | None:
        assert self._ws is not None
        self._process(self._ws.receive_eof())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "agent closed the connection")

    # --- inbound --------------------------------------------------------------------------------

    def _process(self, events: list) -> None:
        for event in events:
            if type(event) is Message:
                message = event.data.decode("utf-8", "replace") if event.text else event.data
                try:
                    agent_events = self.dialect.parse(message)
                except AgentProtocolError as exc:
                    self.protocol_errors += 1
                    log.warning("agent %s: dropped a message: %s", self.url, exc)
                    continue
                callback = self.on_event
                if callback is not None:
                    for agent_event in agent_events:
                        callback(agent_event)
            elif type(event) is Opened:
                if self._handshake is not None and not self._handshake.done():
                    self._handshake.set_result(None)
            elif type(event) is Closed:
                self._flush()  # our answer to the agent's close, or the close we failed the connection with
                if event.refused:
                    self._finish(event.reason)
                else:
                    self._finish(f"agent closed the WebSocket ({event.code}{' ' + event.reason if event.reason else ''})")
                if self._transport is not None:
                    self._transport.close()
                return
        self._flush()  # pongs

    # --- outbound -------------------------------------------------------------------------------

    def send_audio(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.dropped_frames += 1
            return
        self._send(self.dialect.media(frame))

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
        data = self._ws.close() if self._ws is not None else b""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if data:
                transport.write(data)
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._abort)  # if the agent never answers

    def _send(self, message: str | bytes) -> None:
        transport, ws = self._transport, self._ws
        if self._closing or ws is None or ws.state is not _OPEN or transport is None or transport.is_closing():
            return
        transport.write(ws.text(message.encode()) if isinstance(message, str) else ws.binary(message))

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or self._ws is None:
            return
        for data in self._ws.data_to_send():
            transport.write(data)

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
