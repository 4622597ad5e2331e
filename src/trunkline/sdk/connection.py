"""The client side of one QUIC connection: requests on bidi streams, events and audio on uni streams."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol
from aioquic.asyncio import connect as quic_connect
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration

from trunkline.sdk.errors import CertificateRefused, ConnectionLost, TrunklineError, error_for_reset
from trunkline.wire import FrameDecoder, FrameError, WireError, encode_frame
from trunkline.wire.dtos import AudioFrame, CallEvent, Dto
from trunkline.wire.methods import AUDIO_FRAME_METHOD_ID, CALL_EVENT_METHOD_ID, Method

log = logging.getLogger(__name__)

ALPN = ["h3"]
#: QUIC closes a connection whose TLS handshake failed with CRYPTO_ERROR + the TLS alert (RFC 9001 §4.8);
#: these alerts say the certificate was the problem (RFC 8446 §6.2).
CRYPTO_ERROR = 0x100
CERTIFICATE_ALERTS = frozenset((42, 43, 44, 45, 46, 48, 116))
#: Frames of one call kept while nobody reads its audio (10 s at 20 ms): the oldest go first.
AUDIO_BACKLOG = 500
#: A PING goes out this often, as a share of the idle timeout both ends agreed on: an open connection
#: that only waits (an idle event stream) is not closed under it, and a lost PING or two does not matter.
KEEPALIVE_FRACTION = 1 / 3


class _Closed:
    """Sentinel put on listener queues when the connection ends."""


CLOSED = _Closed()


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, tuple[asyncio.Future, bytearray]] = {}
        self._inbound: dict[int, FrameDecoder] = {}
        self._audio_out: dict[str, tuple[int, int]] = {}  # call_sid -> (stream id, next sequence number)
        self.event_listeners: set[asyncio.Queue] = set()
        self.audio_listeners: dict[str, set[asyncio.Queue]] = {}
        self.audio_backlog: dict[str, deque] = {}
        self.terminated: str | None = None
        self._keepalive: asyncio.TimerHandle | None = None

    async def wait_connected(self) -> None:
        """Wait for the handshake; a failed one raises ``ConnectionError`` with the reason QUIC gave,
        or :class:`CertificateRefused` when it was the gateway's certificate."""
        try:
            await super().wait_connected()
        except ConnectionError:
            close = self._quic._close_event  # aioquic keeps why it closed here and nowhere public
            if close is not None and close.error_code - CRYPTO_ERROR in CERTIFICATE_ALERTS:
                raise CertificateRefused(f"the gateway's certificate was refused: {close.reason_phrase}") from None
            raise ConnectionError(close.reason_phrase if close is not None else "") from None
        finally:
            # Cancelled by a connect timeout: aioquic later fails the abandoned waiter; retrieve that
            # exception so asyncio does not log it as never retrieved.
            waiter = self._connected_waiter
            if waiter is not None:
                waiter.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def request(self, method: Method, message: Dto, timeout: float) -> Dto:
        if self.terminated:
            raise ConnectionLost(self.terminated, method.name)
        stream_id = self._quic.get_next_available_stream_id()
        future = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = (future, bytearray())
        self._quic.send_stream_data(stream_id, encode_frame(method.method_id, message), end_stream=True)
        self.transmit()
        try:
            payload = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise TrunklineError(f"no answer within {timeout:g} s", method.name) from None
        except _ResetSignal as signal:
            raise signal.as_error(method.name) from None
        finally:
            self._pending.pop(stream_id, None)
        return self._decode_response(method, payload)

    @staticmethod
    def _decode_response(method: Method, data: bytes) -> Dto:
        decoder = FrameDecoder()
        try:
            frames = decoder.feed(data)
            decoder.close()
        except FrameError as exc:
            raise TrunklineError(f"malformed response: {exc}", method.name) from None
        if len(frames) != 1 or frames[0][0] != method.method_id:
            raise TrunklineError("response does not match the request", method.name)
        try:
            return method.response.from_bytes(frames[0][1])
        except WireError as exc:
            raise TrunklineError(f"undecodable response: {exc}", method.name) from None

    def send_audio(self, call_sid: str, payload: bytes, codec: str, end_of_stream: bool) -> None:
        if self.terminated:
            raise ConnectionLost(self.terminated, "AudioFrame")
        stream_id, seq = self._audio_out.get(call_sid) or (self._quic.get_next_available_stream_id(is_unidirectional=True), 0)
        frame = AudioFrame(call_sid=call_sid, payload=payload, codec=codec, sequence_number=seq, end_of_stream=end_of_stream)
        self._quic.send_stream_data(stream_id, encode_frame(AUDIO_FRAME_METHOD_ID, frame), end_stream=end_of_stream)
        if end_of_stream:
            self._audio_out.pop(call_sid, None)
        else:
            self._audio_out[call_sid] = (stream_id, seq + 1)
        self.transmit()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            pending = self._pending.get(event.stream_id)
            if pending is not None:
                future, buf = pending
                buf += event.data
                if event.end_stream and not future.done():
                    future.set_result(bytes(buf))
            elif event.stream_id & 0x3 == 0x3:  # gateway-initiated uni stream
                self._on_uni(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            pending = self._pending.get(event.stream_id)
            if pending is not None and not pending[0].done():
                pending[0].set_exception(_ResetSignal(event.error_code))
            self._inbound.pop(event.stream_id, None)
        elif isinstance(event, events.HandshakeCompleted):
            self._ping_later()
        elif isinstance(event, events.ConnectionTerminated):
            self._terminate(event.reason_phrase or f"connection closed (0x{event.error_code:x})")

    def _ping_later(self) -> None:
        # aioquic keeps the negotiated idle timeout (the smaller of both ends', RFC 9000 §10.1) private.
        self._keepalive = self._loop.call_later(self._quic._idle_timeout() * KEEPALIVE_FRACTION, self._ping)

    def _ping(self) -> None:
        self._quic.send_ping(0)
        self.transmit()
        self._ping_later()

    def _on_uni(self, stream_id: int, data: bytes, fin: bool) -> None:
        decoder = self._inbound.setdefault(stream_id, FrameDecoder())
        try:
            frames = decoder.feed(data)
            if fin:
                decoder.close()
        except FrameError as exc:
            log.warning("gateway stream %d broken: %s", stream_id, exc)
            self._inbound.pop(stream_id, None)
            return
        if fin:
            self._inbound.pop(stream_id, None)
        for method_id, envelope in frames:
            try:
                if method_id == CALL_EVENT_METHOD_ID:
                    event = CallEvent.from_bytes(envelope)
                    for queue in self.event_listeners:
                        queue.put_nowait(event)
                elif method_id == AUDIO_FRAME_METHOD_ID:
                    self._on_audio(AudioFrame.from_bytes(envelope))
            except WireError as exc:
                log.warning("undecodable frame from gateway: %s", exc)

    def _on_audio(self, frame: AudioFrame) -> None:
        listeners = self.audio_listeners.get(frame.call_sid)
        if listeners:
            for queue in listeners:
                queue.put_nowait(frame)
        else:
            self.audio_backlog.setdefault(frame.call_sid, deque(maxlen=AUDIO_BACKLOG)).append(frame)

    def _terminate(self, reason: str) -> None:
        if self.terminated:
            return
        self.terminated = reason
        if self._keepalive is not None:
            self._keepalive.cancel()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(_ResetSignal(None, reason))
        for queue in self.event_listeners:
            queue.put_nowait(CLOSED)
        for listeners in self.audio_listeners.values():
            for queue in listeners:
                queue.put_nowait(CLOSED)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._terminate("connection lost")


class _ResetSignal(Exception):
    """Carries a stream reset (or a connection loss) from the event callback to the awaiting caller,
    which knows the method name needed for a useful error."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def as_error(self, method: str) -> TrunklineError:
        if self.code is None:
            return ConnectionLost(self.reason, method)
        return error_for_reset(self.code, method)


def client_configuration(
    server_name: str | None, ca_file: str | None, insecure: bool, idle_timeout: float = 60.0,
) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=ALPN, idle_timeout=idle_timeout,
                                      server_name=server_name)
    if insecure:
        configuration.verify_mode = ssl.CERT_NONE
    elif ca_file:
        configuration.load_verify_locations(cafile=ca_file)
    return configuration


def open_connection(host: str, port: int, configuration: QuicConfiguration):
    """An async context manager yielding a connected :class:`ClientProtocol`."""
    return quic_connect(host, port, configuration=configuration, create_protocol=ClientProtocol,
                        wait_connected=True)
