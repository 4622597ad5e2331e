"""asyncio protocols for the SIP transports: one UDP socket and TCP connections.

They only move bytes: UDP hands whole datagrams to the endpoint, TCP frames the stream with the
core's :class:`~trunkline.sip.message.StreamParser` and reports connection loss. Every decision
about what a message means is the endpoint's, so these stay small and free of SIP state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from trunkline.sip.message import ParserLimits, SipParseError, StreamParser

from .routing import SipTarget

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

__all__ = ["TcpConnection", "UdpProtocol"]


class UdpProtocol(asyncio.DatagramProtocol):
    """The endpoint's single UDP socket."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._endpoint._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors on an unconnected socket cannot be tied to a destination; the
        # transactions' timers cover the loss.
        self._endpoint.stats.transport_errors += 1


class TcpConnection(asyncio.Protocol):
    """One TCP connection, accepted or opened by us, reused for every message to its peer.

    Outgoing connections are created before the connect finishes so that transactions can send at
    once; bytes written meanwhile are queued. ``target`` is the peer's address, the key under which
    the endpoint finds the connection again (RFC 3261 §18.2.2 answers on the request's connection).
    """

    def __init__(self, endpoint: SipEndpoint, target: SipTarget | None, limits: ParserLimits) -> None:
        self._endpoint = endpoint
        self.target = target
        self._parser = StreamParser(limits)
        self._transport: asyncio.Transport | None = None
        self._queue: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self.target is None:
            peer = self._transport.get_extra_info("peername")
            self.target = SipTarget(peer[0], peer[1], "tcp")
            self._endpoint._tcp_accepted(self)
        if self._queue:
            self._transport.writelines(self._queue)
            self._queue.clear()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._transport is None:
            self._queue.append(data)
        else:
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        assert self.target is not None
        while True:
            try:
                messages = self._parser.feed(data)
                break
            except SipParseError as exc:
                self._endpoint._on_bad_message(exc, self.target)
                if exc.fatal:
                    self.close()
                    return
                data = b""  # the bad message was skipped; collect what preceded or follows it
        for message in messages:
            self._endpoint._on_message(message, self.target)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        else:
            self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._endpoint._tcp_lost(self)
