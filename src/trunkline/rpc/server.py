"""The aioquic edge of the RPC: one protocol object per QUIC connection, streams to dispatcher.

Everything that can go wrong on one stream (a torn frame, a handler error, a peer that resets or
never reads) is contained to that stream; a connection's teardown releases its subscriptions. What
a connection may hold in unfinished requests is :mod:`trunkline.rpc.intake`'s to decide (§5).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.tls import pull_client_hello

from trunkline.calls.events import CallEvent
from trunkline.enums import ErrorCode
from trunkline.rpc.dispatch import Dispatcher, Outcome, Reply, Reset
from trunkline.rpc.errors import reset_code
from trunkline.rpc.handlers import RpcHandlers, event_to_dto
from trunkline.rpc.intake import IntakeLimits, RequestIntake
from trunkline.rpc.session import Session
from trunkline.wire import FrameDecoder, FrameError, WireError, encode_frame
from trunkline.wire.dtos import AudioFrame
from trunkline.wire.methods import AUDIO_FRAME_METHOD_ID, CALL_EVENT_METHOD_ID

log = logging.getLogger(__name__)

ALPN = ["h3"]
#: Unsent bytes a gateway uni stream may hold before its reader counts as stuck.
OUTBOUND_STREAM_LIMIT = 4 << 20
#: Event subscribers get a PING this often, as a share of the negotiated idle timeout (see _ping_later).
KEEPALIVE_FRACTION = 1 / 3
_VALIDATION_RESET = reset_code(ErrorCode.ERR_VALIDATION_FAILED)
_UNAUTHORIZED_RESET = reset_code(ErrorCode.ERR_UNAUTHORIZED)


def _client_uni(stream_id: int) -> bool:
    return stream_id & 0x3 == 0x2


def _client_bidi(stream_id: int) -> bool:
    return stream_id & 0x3 == 0x0


class RpcConnection(QuicConnectionProtocol):
    def __init__(self, *args: Any, handlers: RpcHandlers, dispatcher: Dispatcher, limits: IntakeLimits,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handlers = handlers
        self._dispatcher = dispatcher
        self._intake = RequestIntake(limits)
        self._intake_timer: asyncio.TimerHandle | None = None
        self._inbound_audio: dict[int, FrameDecoder] = {}
        self._event_stream: int | None = None
        self._audio_streams: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()
        self._keepalive: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._terminated = False
        self.session = Session(peer="?", outlet=self)
        _serve_without_alpn(self._quic)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._handlers.open_session(self.session)

    # --- inbound -----------------------------------------------------------------------------

    def quic_event_received(self, event: events.QuicEvent) -> None:
        try:
            if isinstance(event, events.StreamDataReceived):
                if _client_bidi(event.stream_id):
                    self._on_request_data(event.stream_id, event.data, event.end_stream)
                elif _client_uni(event.stream_id):
                    self._on_audio_data(event.stream_id, event.data, event.end_stream)
            elif isinstance(event, events.StreamReset):
                self._intake.forget(event.stream_id)
                self._inbound_audio.pop(event.stream_id, None)
            elif isinstance(event, events.StopSendingReceived):
                self._forget_outbound(event.stream_id)
            elif isinstance(event, events.HandshakeCompleted):
                paths = getattr(self._quic, "_network_paths", None)  # aioquic keeps the peer address private
                if paths:
                    self.session.peer = "%s:%s" % paths[0].addr[:2]
            elif isinstance(event, events.ConnectionTerminated):
                self._teardown()
        except Exception:  # noqa: BLE001 - never let one event take the connection down
            log.exception("error handling %s", type(event).__name__)

    def _on_request_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        authorized = self.session.authorized(self._dispatcher.clock())
        request = self._intake.feed(stream_id, data, fin, authorized, self._loop.time())
        if not authorized and self._intake_timer is None:
            self._arm_intake_timer()
        if request is None:
            return
        if isinstance(request, Reset):
            self._apply(stream_id, request)
            return
        outcome = self._dispatcher.dispatch(self.session, request)
        if isinstance(outcome, (Reply, Reset)):
            self._apply(stream_id, outcome)
        else:
            task = asyncio.ensure_future(self._apply_later(stream_id, outcome))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _arm_intake_timer(self) -> None:
        """One timer per connection, at the earliest deadline of its unfinished requests."""
        deadline = self._intake.next_deadline()
        if deadline is not None and not self._terminated:
            self._intake_timer = self._loop.call_at(deadline, self._on_intake_deadline)

    def _on_intake_deadline(self) -> None:
        self._intake_timer = None
        late = Reset(_UNAUTHORIZED_RESET, "request opened before Authenticate and not finished in time")
        for stream_id in self._intake.expired(self._loop.time()):
            self._apply(stream_id, late)
        self._transmit_soon()
        self._arm_intake_timer()

    async def _apply_later(self, stream_id: int, pending: Any) -> None:
        self._apply(stream_id, await pending)
        self._transmit_soon()

    def _apply(self, stream_id: int, outcome: Outcome) -> None:
        """Queue the answer; inside ``quic_event_received`` aioquic transmits once after the whole
        datagram, so answers to requests that arrived together leave together."""
        if self._terminated:
            return
        quic = self._quic
        try:
            if isinstance(outcome, Reply):
                quic.send_stream_data(stream_id, outcome.frame, end_stream=True)
            else:
                log.debug("stream %d reset 0x%x: %s", stream_id, outcome.error_code, outcome.reason)
                quic.reset_stream(stream_id, outcome.error_code)
                self._stop_receiving(stream_id, outcome.error_code)
        except (ValueError, RuntimeError):
            pass  # the peer already reset or stopped the stream: its answer is nobody's business

    def keep_alive(self) -> None:
        """An event subscriber may wait in silence for longer than the idle timeout, and the public
        SDKs never PING; so the gateway does, from its first subscription on. A peer that is gone
        stops answering, and the idle timeout still ends its connection (RFC 9000 §10.1)."""
        if self._keepalive is None and not self._terminated:
            self._ping_later()

    def expire_at(self, expires_at: float) -> None:
        """One timer per connection, moved by each fresh token: no clock check per event or frame."""
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = None
        if not self._terminated:
            delay = max(0.0, expires_at - self._dispatcher.clock())
            self._expiry = self._loop.call_later(delay, self._on_expiry)

    def _on_expiry(self) -> None:
        """The token has expired: the connection's event and audio streams stop (reset 0x107) and
        its subscription ends, so its client_id's events wait for replay until a fresh token and a
        new StreamEvents (§5). The loop's timer and the wall clock may drift: the session decides."""
        self._expiry = None
        session = self.session
        if session.authorized(self._dispatcher.clock()) and session.expires_at is not None:
            self.expire_at(session.expires_at)
            return
        log.info("%s: token expired; its event and audio streams stop", session.peer)
        self._handlers.events.unsubscribe(self)
        for stream_id in [self._event_stream, *self._audio_streams.values()]:
            if stream_id is not None:
                self._reset_outbound(stream_id, _UNAUTHORIZED_RESET)
        for stream_id in list(self._inbound_audio):
            self._stop_receiving(stream_id, _UNAUTHORIZED_RESET)
        self._inbound_audio.clear()

    def _ping_later(self) -> None:
        # aioquic keeps the negotiated idle timeout (the smaller of both ends') private.
        self._keepalive = self._loop.call_later(self._quic._idle_timeout() * KEEPALIVE_FRACTION, self._ping)

    def _ping(self) -> None:
        self._quic.send_ping(0)
        self._transmit_soon()
        self._ping_later()

    def _stop_receiving(self, stream_id: int, code: int) -> None:
        try:
            self._quic.stop_stream(stream_id, code)
        except ValueError:
            pass  # the receive side is already finished

    def _on_audio_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        decoder = self._inbound_audio.get(stream_id)
        if decoder is None:
            if not self.session.authorized(self._dispatcher.clock()):
                self._stop_receiving(stream_id, _UNAUTHORIZED_RESET)
                return
            decoder = self._inbound_audio[stream_id] = FrameDecoder()
        try:
            frames = decoder.feed(data)
            if fin:
                decoder.close()
                del self._inbound_audio[stream_id]
            for method_id, envelope in frames:
                if method_id != AUDIO_FRAME_METHOD_ID:
                    raise FrameError(f"method {method_id} on an audio stream")
                self._handlers.audio_frame(self.session, AudioFrame.from_bytes(envelope))
        except (FrameError, WireError) as exc:
            log.debug("audio stream %d rejected: %s", stream_id, exc)
            self._inbound_audio.pop(stream_id, None)
            self._stop_receiving(stream_id, _VALIDATION_RESET)

    # --- outbound (ConnectionOutlet) ---------------------------------------------------------

    def deliver(self, event: CallEvent) -> bool:
        if self._terminated:
            return False
        if self._event_stream is None:
            self._event_stream = self._quic.get_next_available_stream_id(is_unidirectional=True)
        return self._push(self._event_stream, encode_frame(CALL_EVENT_METHOD_ID, event_to_dto(event)), False)

    def send_audio(self, call_sid: str, payload: bytes, codec: str, sequence_number: int, end_of_stream: bool) -> bool:
        if self._terminated:
            return False
        stream_id = self._audio_streams.get(call_sid)
        if stream_id is None:
            stream_id = self._audio_streams[call_sid] = self._quic.get_next_available_stream_id(is_unidirectional=True)
        frame = AudioFrame(call_sid=call_sid, payload=payload, codec=codec,
                           sequence_number=sequence_number, end_of_stream=end_of_stream)
        if end_of_stream:
            del self._audio_streams[call_sid]
        return self._push(stream_id, encode_frame(AUDIO_FRAME_METHOD_ID, frame), end_of_stream)

    def _push(self, stream_id: int, frame: bytes, fin: bool) -> bool:
        stream = self._quic._streams.get(stream_id)
        if stream is not None and len(getattr(stream.sender, "_buffer", b"")) > OUTBOUND_STREAM_LIMIT:
            log.warning("%s: stream %d is not being read; dropping it", self.session.peer, stream_id)
            self._reset_outbound(stream_id, reset_code(ErrorCode.ERR_RATE_LIMITED))
            return False
        try:
            self._quic.send_stream_data(stream_id, frame, end_stream=fin)
        except (ValueError, RuntimeError):
            self._forget_outbound(stream_id)
            return False
        self._transmit_soon()  # pushes made in one loop iteration (a media tick) share packets
        return True

    def _reset_outbound(self, stream_id: int, code: int) -> None:
        self._forget_outbound(stream_id)
        self._quic.reset_stream(stream_id, code)
        self._transmit_soon()

    def _forget_outbound(self, stream_id: int) -> None:
        if stream_id == self._event_stream:
            self._event_stream = None
            self._handlers.events.unsubscribe(self)
        for call_sid, sid in list(self._audio_streams.items()):
            if sid == stream_id:
                del self._audio_streams[call_sid]

    def _teardown(self) -> None:
        if self._terminated:
            return
        self._terminated = True
        for timer in (self._keepalive, self._expiry, self._intake_timer):
            if timer is not None:
                timer.cancel()
        self._handlers.close_session(self.session)
        for task in self._tasks:
            task.cancel()
        self._intake.clear()
        self._inbound_audio.clear()


def _serve_without_alpn(quic: QuicConnection) -> None:
    """Serves a client that offers no ALPN (the public Rust SDK) like one offering h3 (PROTOCOL.md §1).

    aioquic refuses such a client ("No common ALPN protocols") whenever the server has an ALPN list,
    and has no setting to make ALPN optional. So for this one connection the ClientHello is read once
    more just before aioquic handles it; if it has no ALPN extension, the TLS context negotiates none
    and so answers none, as RFC 7301 requires. A client offering only other protocols is still
    refused, and h3 stays on offer for everyone else. This touches aioquic internals (``_initialize``,
    ``tls._server_handle_hello``, ``tls._alpn_protocols``); tests/rpc/test_alpn.py fails if they move.
    """
    initialize = quic._initialize

    def initialize_then_wrap_hello(peer_cid: bytes) -> None:
        initialize(peer_cid)
        context = quic.tls
        handle_hello = context._server_handle_hello

        def handle_hello_without_alpn(input_buf: Any, *buffers: Any) -> None:
            start = input_buf.tell()
            if pull_client_hello(input_buf).alpn_protocols is None:
                context._alpn_protocols = None
            input_buf.seek(start)
            handle_hello(input_buf, *buffers)

        context._server_handle_hello = handle_hello_without_alpn

    quic._initialize = initialize_then_wrap_hello


class RpcServer:
    """The listening QUIC endpoint. ``configuration`` may be reloaded (certificate renewal) while
    serving: new connections pick up the new chain."""

    def __init__(self, handlers: RpcHandlers, dispatcher: Dispatcher, configuration: QuicConfiguration,
                 limits: IntakeLimits = IntakeLimits()) -> None:
        self.handlers = handlers
        self.dispatcher = dispatcher
        self.configuration = configuration
        self.limits = limits
        self._server: QuicServer | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await serve(
            host, port, configuration=self.configuration, create_protocol=self._create_protocol,
        )

    def _create_protocol(self, *args: Any, **kwargs: Any) -> RpcConnection:
        return RpcConnection(*args, handlers=self.handlers, dispatcher=self.dispatcher, limits=self.limits, **kwargs)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "not started"
        return self._server._transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def server_configuration(cert_file: str, key_file: str, idle_timeout: float = 60.0) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=False, alpn_protocols=ALPN, idle_timeout=idle_timeout)
    configuration.load_cert_chain(cert_file, key_file)
    return configuration
