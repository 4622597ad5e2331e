"""asyncio protocols for the SIP transports: one UDP socket and TCP connections.

They only move bytes: UDP hands whole datagrams to the endpoint, TCP frames the stream with the
core's :class:`~trunkline.sip.message.StreamParser` and reports connection loss, and both report
which peer the network refused (ICMP unreachable, TCP refused or reset). Every decision about what
a message means is the endpoint's, so these stay small and free of SIP state.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import sys
from typing import TYPE_CHECKING, cast

from trunkline.sip.message import ParserLimits, SipParseError, StreamParser

from .routing import SipTarget

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

__all__ = ["TcpConnection", "UdpProtocol", "read_icmp_errors"]

# Linux values; Python 3.11's socket module lacks the names.
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)

UNREACHABLE = frozenset((errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN))
"""Queued errors that mean nobody will answer at that address (unlike EMSGSIZE, a path MTU hint)."""


class UdpProtocol(asyncio.DatagramProtocol):
    """The endpoint's single UDP socket.

    On Linux it asks for IP_RECVERR: the kernel then queues every ICMP error with the destination
    that caused it, so an unreachable trunk fails its INVITE at once instead of after timer B.
    Both asyncio and uvloop report such an error as ``error_received(ConnectionRefusedError)``
    without the address; the address is read from the socket's error queue here.
    """

    def __init__(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint
        self._fileno = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sys.platform != "linux" or sock is None:
            return
        try:
            if sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        except OSError:
            return  # an IPv6-only socket refuses the IPv4 option; its own is set
        self._fileno = sock.fileno()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._endpoint._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._endpoint.stats.transport_errors += 1
        if self._fileno < 0:
            return  # no error queue: the transactions' timers cover the loss
        for (host, port), code in read_icmp_errors(self._fileno):
            if code in UNREACHABLE:
                self._endpoint._udp_unreachable(SipTarget(host, port, "udp"), os.strerror(code))


def read_icmp_errors(fileno: int) -> list[tuple[tuple[str, int], int]]:
    """Drain the socket's error queue (IP_RECVERR): (destination, errno) of each queued error.

    Draining also clears the readiness the queue keeps raising, so the loop never spins on it.
    A duplicate descriptor is read because neither loop lends out its socket for ``recvmsg``.
    """
    errors: list[tuple[tuple[str, int], int]] = []
    with socket.socket(fileno=os.dup(fileno)) as sock:
        while True:
            try:
                _, ancillary, _, address = sock.recvmsg(
                    0, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except OSError:  # EAGAIN: the queue is empty
                break
            for level, kind, data in ancillary:
                if (level, kind) in ((socket.IPPROTO_IP, _IP_RECVERR),
                                     (socket.IPPROTO_IPV6, _IPV6_RECVERR)) and len(data) >= 4:
                    errors.append(((address[0], address[1]), struct.unpack_from("=I", data)[0]))
    return errors


class TcpConnection(asyncio.Protocol):
    """One TCP (or TLS: same framing, RFC 3261 §26) connection, accepted or opened by us, reused for
    every message to its peer.

    Outgoing connections are created before the connect finishes so that transactions can send at
    once; bytes written meanwhile are queued. ``target`` is the peer's address, the key under which
    the endpoint finds the connection again (RFC 3261 §18.2.2 answers on the request's connection).
    """

    def __init__(self, endpoint: SipEndpoint, target: SipTarget | None, limits: ParserLimits,
                 transport: str = "tcp") -> None:
        self._endpoint = endpoint
        self.target = target
        self.transport = target.transport if target is not None else transport
        self._parser = StreamParser(limits)
        self._transport: asyncio.Transport | None = None
        self._queue: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self.target is None:
            peer = self._transport.get_extra_info("peername")
            self.target = SipTarget(peer[0], peer[1], self.transport)
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
        self._endpoint._tcp_lost(self, exc)
