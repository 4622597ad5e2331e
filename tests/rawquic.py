"""A deliberately low-level QUIC client for tests: writes arbitrary bytes on streams and records what
comes back, the way foreign or broken clients behave."""

from __future__ import annotations

import asyncio
import ssl
from contextlib import asynccontextmanager
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration


class RawProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data: dict[int, bytearray] = {}
        self.finished: dict[int, asyncio.Future] = {}

    def _future(self, stream_id: int) -> asyncio.Future:
        if stream_id not in self.finished:
            self.finished[stream_id] = asyncio.get_running_loop().create_future()
        return self.finished[stream_id]

    def send(self, data: bytes, fin: bool = True, uni: bool = False) -> int:
        stream_id = self._quic.get_next_available_stream_id(is_unidirectional=uni)
        self._quic.send_stream_data(stream_id, data, end_stream=fin)
        self.transmit()
        return stream_id

    def reset(self, stream_id: int, code: int = 0) -> None:
        self._quic.reset_stream(stream_id, code)
        self.transmit()

    async def outcome(self, stream_id: int, timeout: float = 5.0) -> tuple[str, Any]:
        """("data", bytes) when the answer finished, ("reset", code) when the gateway reset it."""
        return await asyncio.wait_for(self._future(stream_id), timeout)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            buf = self.data.setdefault(event.stream_id, bytearray())
            buf += event.data
            if event.end_stream and not self._future(event.stream_id).done():
                self._future(event.stream_id).set_result(("data", bytes(buf)))
        elif isinstance(event, (events.StreamReset, events.StopSendingReceived)):
            future = self._future(event.stream_id)
            if not future.done():
                future.set_result(("reset", event.error_code))


@asynccontextmanager
async def raw_connection(gateway):
    host, port = gateway.rpc.address
    configuration = QuicConfiguration(is_client=True, alpn_protocols=["h3"])
    configuration.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=configuration, create_protocol=RawProtocol) as protocol:
        yield protocol
