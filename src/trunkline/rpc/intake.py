"""Request bytes in, complete requests or refusals out: what one connection may hold unanswered.

PROTOCOL.md §5: a peer that has not authenticated gets no resources -- a few requests in flight,
none above 64 KiB, each finished within a deadline -- and an authenticated one holds a bounded
number of unfinished request bytes. Pure: the caller says whether the session is authorized and
what time it is (monotonic), and keeps one timer at :meth:`RequestIntake.next_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.enums import ErrorCode
from trunkline.rpc.dispatch import Reset
from trunkline.rpc.errors import reset_code
from trunkline.wire import FRAME_LIMIT, request_frame_ready

_HEADER = 8  # u32 length + u32 method_id
_UNAUTHORIZED = reset_code(ErrorCode.ERR_UNAUTHORIZED)


@dataclass(frozen=True)
class IntakeLimits:
    streams_before_auth: int = 4
    body_before_auth: int = 64 << 10
    timeout_before_auth_s: float = 10.0
    pending_bytes: int = 8 << 20  # unfinished request bytes per authenticated connection


class RequestIntake:
    """Buffers each bidi request stream until its frame is complete. Refusals before Authenticate
    are ``0x107`` (the peer's remedy is to authenticate); over the byte cap after it, ``0x103``."""

    def __init__(self, limits: IntakeLimits) -> None:
        self.limits = limits
        self._pending = 0  # bytes held in unfinished requests
        self._buffers: dict[int, bytearray] = {}
        # Streams opened before Authenticate. Every deadline is "opened + the same timeout" on a
        # monotonic clock, so insertion order is deadline order and the first is the earliest.
        self._deadlines: dict[int, float] = {}
        self._ignored: set[int] = set()  # answered or refused before FIN: later bytes are dropped

    def feed(self, stream_id: int, data: bytes, fin: bool, authorized: bool, now: float) -> bytearray | Reset | None:
        """A complete request to dispatch, a refusal to apply to the stream, or None (wait for more)."""
        if stream_id in self._ignored:
            if fin:
                self._ignored.discard(stream_id)
            return None
        limits = self.limits
        buf = self._buffers.get(stream_id)
        if buf is None:
            if not authorized and len(self._buffers) >= limits.streams_before_auth:
                self._refuse(stream_id, fin)
                why = f"more than {limits.streams_before_auth} requests in flight before Authenticate"
                return Reset(_UNAUTHORIZED, why)
            buf = self._buffers[stream_id] = bytearray()
            if not authorized:
                self._deadlines[stream_id] = now + limits.timeout_before_auth_s
        buf += data
        self._pending += len(data)
        if not authorized and _claimed_size(buf) > limits.body_before_auth + _HEADER:
            self._refuse(stream_id, fin)
            return Reset(_UNAUTHORIZED, f"request above {limits.body_before_auth} bytes before Authenticate")
        if len(buf) > FRAME_LIMIT + _HEADER:
            self._refuse(stream_id, fin)
            return Reset(reset_code(ErrorCode.ERR_VALIDATION_FAILED), "request larger than the frame limit")
        if fin or request_frame_ready(buf):
            self._drop(stream_id)
            if not fin:
                self._ignored.add(stream_id)
            return buf
        if self._pending > limits.pending_bytes:
            self._refuse(stream_id, fin)
            why = f"over {limits.pending_bytes} unfinished request bytes"
            return Reset(reset_code(ErrorCode.ERR_RATE_LIMITED), why)
        return None

    def next_deadline(self) -> float | None:
        return next(iter(self._deadlines.values()), None)

    def expired(self, now: float) -> list[int]:
        """Streams opened before Authenticate and still unfinished at their deadline, now refused."""
        late = []
        for stream_id, deadline in self._deadlines.items():
            if deadline > now:
                break
            late.append(stream_id)
        for stream_id in late:
            self._refuse(stream_id, False)
        return late

    def forget(self, stream_id: int) -> None:
        """The peer reset the stream."""
        self._drop(stream_id)
        self._ignored.discard(stream_id)

    def clear(self) -> None:
        self._buffers.clear()
        self._deadlines.clear()
        self._ignored.clear()
        self._pending = 0

    def _refuse(self, stream_id: int, fin: bool) -> None:
        self._drop(stream_id)
        if not fin:
            self._ignored.add(stream_id)

    def _drop(self, stream_id: int) -> None:
        buf = self._buffers.pop(stream_id, None)
        if buf is not None:
            self._pending -= len(buf)
        self._deadlines.pop(stream_id, None)


def _claimed_size(buf: bytearray) -> int:
    """Bytes the request will reach at least: what arrived, or what its length field promises under
    the smaller reading (the C-FFI core's, where the length counts the header too)."""
    claimed = int.from_bytes(buf[:4], "little") if len(buf) >= 4 else 0
    return max(claimed, len(buf))
