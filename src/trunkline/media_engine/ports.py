"""RTP/RTCP port allocation from a configured range.

Each lease is an even RTP port with its RTCP socket on port + 1, both already bound. Our SDP does not
offer ``a=rtcp-mux``, so by RFC 3550 the peer sends RTCP to the RTP port + 1 and the pair must be
ours; the session still accepts RTCP multiplexed on the RTP port from peers that do it anyway.
Binding happens here rather than in the session so a port taken by another process is skipped at
allocation time, and freed ports go to the back of the queue so a new call does not inherit stray
packets still addressed to the call that just ended.
"""

from __future__ import annotations

import contextlib
import socket
from collections import deque

_DSCP_EF = 46 << 2
"""Expedited Forwarding in the IP TOS / traffic-class byte, the usual marking for voice."""


class PortPoolExhausted(RuntimeError):
    """No port pair in the range could be bound: all are leased or taken by other processes."""


class PortLease:
    """A bound RTP/RTCP socket pair, held until :meth:`release`."""

    __slots__ = ("pool", "port", "rtp_socket", "rtcp_socket", "_released")

    def __init__(self, pool: RtpPortPool, port: int, rtp_socket: socket.socket, rtcp_socket: socket.socket) -> None:
        self.pool = pool
        self.port = port
        self.rtp_socket = rtp_socket
        self.rtcp_socket = rtcp_socket
        self._released = False

    def release(self) -> None:
        """Close both sockets (a no-op for any a transport already closed) and return the port; idempotent."""
        if self._released:
            return
        self._released = True
        self.rtp_socket.close()
        self.rtcp_socket.close()
        self.pool._give_back(self.port)


class RtpPortPool:
    """Even ports from ``low`` to ``high`` (inclusive), each with its odd neighbour for RTCP."""

    def __init__(self, host: str, low: int, high: int) -> None:
        first = low + (low & 1)
        if not 0 < first < high <= 65535:
            raise ValueError(f"port range {low}-{high} holds no even/odd port pair")
        self.host = host
        self.low = low
        self.high = high
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._free: deque[int] = deque(range(first, high, 2))
        self._leased: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._leased)

    @property
    def leased(self) -> int:
        return len(self._leased)

    def acquire(self) -> PortLease:
        """Bind the next free pair; raises :class:`PortPoolExhausted` when none can be bound."""
        for _ in range(len(self._free)):
            port = self._free.popleft()
            sockets = self._bind_pair(port)
            if sockets is None:
                self._free.append(port)
                continue
            self._leased.add(port)
            return PortLease(self, port, *sockets)
        raise PortPoolExhausted(
            f"no free RTP port pair on {self.host} in {self.low}-{self.high} "
            f"({len(self._leased)} leased, {len(self._free)} unbindable)"
        )

    def _bind_pair(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        bound: list[socket.socket] = []
        try:
            for p in (port, port + 1):
                sock = socket.socket(self._family, socket.SOCK_DGRAM)
                bound.append(sock)
                sock.setblocking(False)
                sock.bind((self.host, p))
                with contextlib.suppress(OSError):  # marking is best effort; some platforms refuse it
                    if self._family == socket.AF_INET:
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _DSCP_EF)
                    else:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _DSCP_EF)
        except OSError:
            for sock in bound:
                sock.close()
            return None
        return bound[0], bound[1]

    def _give_back(self, port: int) -> None:
        self._leased.discard(port)
        self._free.append(port)
