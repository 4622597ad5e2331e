"""The asyncio edge of the QUIC AI bridge: one WebTransport session per agent endpoint, many calls.

All protocol decisions live in :mod:`trunkline.ai.quic_protocol`; this module only moves its bytes
over aioquic and turns what comes back into per-call callbacks. Everything runs in aioquic's own
``quic_event_received`` callback on the one event loop: no threads, no task per frame or per call.

``https://host[:port]/path`` and ``quic://host[:port]/path`` mean the same thing: WebTransport over
HTTP/3 (ALPN ``h3``) with an extended CONNECT to ``/path``. One transport keeps a single agent server
able to serve both spellings, and it is what browsers and every WebTransport stack already speak.

Failures are contained where they happen: a malformed line or datagram from the agent is logged and
dropped; a callback that raises is logged; when the session or connection goes, every open call's
``on_closed`` runs once with the reason and the client stays closed (reconnecting is the caller's
decision, since only it knows whether the calls are still worth keeping).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.client import connect as quic_connect
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection, Setting
from aioquic.h3.events import DataReceived, DatagramReceived, H3Event, HeadersReceived
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration

from trunkline.ai.events import AgentEvent, AgentProtocolError, CallInfo
from trunkline.ai.quic_protocol import (
    DEFAULT_SAMPLE_RATE,
    BargeIn,
    CallerDtmf,
    GatewaySession,
    Playout,
    encode_gateway_message,
)
from trunkline.media.dtmf import DTMF_DIGITS

log = logging.getLogger(__name__)

#: Large enough for any HTTP/3 datagram; the real ceiling is the path MTU, which 24 kHz frames fit.
MAX_DATAGRAM_FRAME_SIZE = 65536

EventCallback = Callable[[AgentEvent], None]
ClosedCallback = Callable[[str], None]


class _SessionProtocol(QuicConnectionProtocol):
    """HTTP/3 + WebTransport plumbing for one connection; hands session traffic to its owner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic, enable_webtransport=True)
        self.settings_received: asyncio.Future[dict[int, int]] = self._loop.create_future()
        self.response: asyncio.Future[int] = self._loop.create_future()
        self.session_id: int | None = None
        self.control_stream_id: int | None = None
        self.on_control: Callable[[bytes], None] = lambda data: None
        self.on_datagram: Callable[[bytes], None] = lambda data: None
        self.on_lost: Callable[[str], None] = lambda reason: None

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.ConnectionTerminated):
            reason = event.reason_phrase or f"error 0x{event.error_code:x}"
            for waiter in (self.settings_received, self.response):
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"connection closed: {reason}"))
                    waiter.exception()  # connect() awaits at most one of them; don't warn about the other
            self.on_lost(f"connection closed: {reason}")
            return
        if isinstance(event, quic_events.StreamReset) and event.stream_id in (self.session_id, self.control_stream_id):
            self.on_lost("agent reset the session")
            return
        if isinstance(event, quic_events.StreamDataReceived) and event.stream_id == self.control_stream_id:
            # aioquic 1.x only recognises WebTransport streams the *peer* opened; on one we opened it
            # would parse the agent's JSON as HTTP/3 frames, so the control stream bypasses H3Connection.
            self.on_control(event.data)
            if event.end_stream:
                self.on_lost("agent closed the control stream")
            return
        for h3_event in self.http.handle_event(event):
            self._h3_event(h3_event)
        if not self.settings_received.done() and self.http.received_settings is not None:
            self.settings_received.set_result(self.http.received_settings)

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, DatagramReceived):
            if event.stream_id == self.session_id:
                self.on_datagram(event.data)
        elif isinstance(event, HeadersReceived) and event.stream_id == self.session_id:
            if not self.response.done():
                status = dict(event.headers).get(b":status", b"")
                self.response.set_result(int(status) if status.isdigit() else 0)
            if event.stream_ended:
                self.on_lost("agent ended the session")
        elif isinstance(event, DataReceived) and event.stream_id == self.session_id and event.stream_ended:
            self.on_lost("agent ended the session")  # the capsules before FIN carry nothing we act on

    def request_session(self, authority: str, path: str) -> None:
        """Send the extended CONNECT (RFC 9220) that opens the WebTransport session."""
        self.session_id = self._quic.get_next_available_stream_id()
        self.http.send_headers(self.session_id, [
            (b":method", b"CONNECT"),
            (b":protocol", b"webtransport"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b"sec-webtransport-http3-draft02", b"1"),  # older (draft-02) servers require it
        ])
        self.transmit()

    def open_control_stream(self) -> None:
        assert self.session_id is not None
        self.control_stream_id = self.http.create_webtransport_stream(self.session_id, is_unidirectional=False)
        self.transmit()

    def send_control(self, data: bytes) -> None:
        assert self.control_stream_id is not None
        self._quic.send_stream_data(self.control_stream_id, data)
        self._transmit_soon()

    def send_datagrams(self, datagrams: list[bytes]) -> None:
        assert self.session_id is not None
        for datagram in datagrams:
            self.http.send_datagram(self.session_id, datagram)
        if datagrams:
            self._transmit_soon()  # every call's frame from one media tick leaves in one flight

    def send_keepalive(self) -> None:
        self._quic.send_ping(0)
        self.transmit()


class AgentCall:
    """One call multiplexed on a :class:`WebTransportAgentClient` session.

    Senders are no-ops once the call or its session is closed: audio for a gone call has nowhere
    useful to go, and raising would make every caller race-check the session first.
    """

    def __init__(self, client: WebTransportAgentClient, call_id: int, on_event: EventCallback,
                 on_closed: ClosedCallback) -> None:
        self._client = client
        self.call_id = call_id
        self._on_event = on_event
        self._on_closed = on_closed
        self.closed = False

    def send_audio(self, pcm8k_20ms: bytes) -> None:
        """Caller audio, 8 kHz PCM16 (normally one 20 ms frame); resampled and sent as datagrams."""
        if not self.closed:
            self._client._send_audio(self.call_id, pcm8k_20ms)

    def send_dtmf(self, digit: str) -> None:
        """A caller key press; one digit, as the gateway detects them one at a time."""
        if len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
            raise ValueError(f"{digit!r} is not a DTMF digit")
        self._control(encode_gateway_message(CallerDtmf(self.call_id, digit.upper())))

    def mark_played(self, name: str) -> None:
        """Tell the agent the audio before its mark ``name`` has been played to the caller."""
        self._control(encode_gateway_message(Playout(self.call_id, name)))

    def barge_in(self) -> None:
        """Tell the agent the caller talked over it and its queued audio was dropped."""
        self._control(encode_gateway_message(BargeIn(self.call_id)))

    def close(self) -> None:
        """End the call (``shutdown``) and free its id; no callbacks run after this."""
        if not self.closed:
            self.closed = True
            self._client._end_call(self.call_id)

    def _control(self, data: bytes) -> None:
        if not self.closed:
            self._client._send_control(data)

    def _deliver(self, event: AgentEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - one call's handler must not break the session
            log.exception("call %d: on_event failed for %s", self.call_id, type(event).__name__)

    def _session_lost(self, reason: str) -> None:
        self.closed = True
        try:
            self._on_closed(reason)
        except Exception:  # noqa: BLE001 - every call must still learn of the loss
            log.exception("call %d: on_closed failed", self.call_id)


class WebTransportAgentClient:
    """The gateway's session to one agent endpoint (PROTOCOL.md §7): ``connect``, ``open_call`` per
    call, ``close``. ``verify`` is True (system CAs), False (no verification, development only) or
    the path of a CA/certificate file to trust. ``idle_timeout`` bounds how long a silently dead
    agent goes unnoticed; the client pings at a third of it so an idle session stays up.
    """

    def __init__(self, url: str, *, verify: bool | str = True, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 idle_timeout: float = 10.0, connect_timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "quic") or not parts.hostname:
            raise ValueError(f"{url!r}: expected https://host[:port]/path or quic://host[:port]/path")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 443
        self._authority = parts.netloc.rpartition("@")[2]
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._verify = verify
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._session = GatewaySession(sample_rate)
        self._calls: dict[int, AgentCall] = {}
        self._stack = AsyncExitStack()
        self._protocol: _SessionProtocol | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._closed_reason: str | None = None
        self._bad_datagrams = 0

    @property
    def connected(self) -> bool:
        return self._protocol is not None and self._closed_reason is None

    @property
    def closed_reason(self) -> str | None:
        """Why the session ended (what every open call's ``on_closed`` was told), or None while up."""
        return self._closed_reason

    async def connect(self) -> None:
        """Handshake, extended CONNECT, then open the control stream. Raises ConnectionError on any
        failure (including a non-200 answer or a server without HTTP/3 datagrams)."""
        if self._protocol is not None or self._closed_reason is not None:
            raise RuntimeError("connect() may be called once; make a new client to reconnect")
        try:
            async with asyncio.timeout(self._connect_timeout):
                protocol = await self._open()
        except BaseException as exc:
            self._closed_reason = "connect failed"
            await self._stack.aclose()
            if isinstance(exc, TimeoutError):
                raise ConnectionError(f"{self.url}: no session within {self._connect_timeout} s") from exc
            raise
        self._protocol = protocol
        protocol.on_control = self._on_control
        protocol.on_datagram = self._on_datagram
        protocol.on_lost = self._lost
        self._schedule_keepalive()

    async def _open(self) -> _SessionProtocol:
        config = QuicConfiguration(
            is_client=True, alpn_protocols=H3_ALPN, max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE,
            idle_timeout=self._idle_timeout, server_name=self._host,
        )
        if self._verify is False:
            config.verify_mode = ssl.CERT_NONE
        elif isinstance(self._verify, str):
            config.load_verify_locations(cafile=self._verify)
        try:
            protocol = await self._stack.enter_async_context(
                quic_connect(self._host, self._port, configuration=config, create_protocol=_SessionProtocol)
            )
        except ConnectionError:
            raise
        except OSError as exc:
            raise ConnectionError(f"{self.url}: {exc}") from exc
        assert isinstance(protocol, _SessionProtocol)
        settings = await protocol.settings_received
        # RFC 9220 says to wait for the peer's SETTINGS before an extended CONNECT; without datagrams
        # there is no audio path, so refuse early and clearly.
        if not settings.get(Setting.ENABLE_CONNECT_PROTOCOL) or not settings.get(Setting.H3_DATAGRAM):
            raise ConnectionError(f"{self.url}: server does not offer extended CONNECT with HTTP/3 datagrams")
        protocol.request_session(self._authority, self._path)
        status = await protocol.response
        if status != 200:
            raise ConnectionError(f"{self.url}: WebTransport CONNECT answered {status}")
        protocol.open_control_stream()
        return protocol

    def open_call(self, info: CallInfo, custom_parameters: Mapping[str, str] | None = None, *,
                  on_event: EventCallback, on_closed: ClosedCallback) -> AgentCall:
        """Start a call on the session (``job_assign``). ``on_event`` gets the agent's events for
        this call; ``on_closed`` runs once if the session goes away while the call is open."""
        if not self.connected:
            raise ConnectionError(f"{self.url}: session is {self._closed_reason or 'not connected'}")
        call_id, line = self._session.open_call(info, custom_parameters or {})
        call = self._calls[call_id] = AgentCall(self, call_id, on_event, on_closed)
        self._send_control(line)
        return call

    async def close(self) -> None:
        """End every open call (``shutdown``), tell each ``on_closed``, and close the connection."""
        if self._closed_reason is None and self._protocol is not None:
            for call_id in list(self._calls):
                self._send_control(self._session.end_call(call_id))
            self._lost("client closed")
        self._closed_reason = self._closed_reason or "client closed"
        await self._stack.aclose()

    # --- plumbing used by AgentCall and the protocol --------------------------------------------

    def _send_control(self, data: bytes) -> None:
        if self.connected:
            assert self._protocol is not None
            self._protocol.send_control(data)

    def _send_audio(self, call_id: int, pcm8k: bytes) -> None:
        if self.connected:
            assert self._protocol is not None
            self._protocol.send_datagrams(self._session.caller_audio(call_id, pcm8k))

    def _end_call(self, call_id: int) -> None:
        if self._calls.pop(call_id, None) is not None and self.connected:
            self._send_control(self._session.end_call(call_id))

    def _on_control(self, data: bytes) -> None:
        for item in self._session.receive_control(data):
            if isinstance(item, AgentProtocolError):
                log.warning("%s: dropped control line: %s", self.url, item)
                continue
            call = self._calls.get(item.call_id)
            if call is None:
                log.debug("%s: control message for call %d, which is not open", self.url, item.call_id)
            elif item.event is not None:
                call._deliver(item.event)

    def _on_datagram(self, data: bytes) -> None:
        try:
            message = self._session.receive_datagram(data)
        except AgentProtocolError as exc:
            # A broken agent sends 50 of these a second per call: log 1, 10, 100, ... not every one.
            self._bad_datagrams += 1
            if str(self._bad_datagrams).strip("0") == "1":
                log.warning("%s: dropped datagram #%d: %s", self.url, self._bad_datagrams, exc)
            return
        call = None if message is None else self._calls.get(message.call_id)
        if call is not None and message is not None and message.event is not None:
            call._deliver(message.event)

    def _lost(self, reason: str) -> None:
        """The session is gone: tell every open call once, stop pinging, and close the connection."""
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call._session_lost(reason)
        if reason != "client closed":
            log.warning("%s: session lost (%s); %d call(s) dropped", self.url, reason, len(calls))
        assert self._protocol is not None
        self._protocol.close(error_code=ErrorCode.H3_NO_ERROR)

    def _schedule_keepalive(self) -> None:
        self._keepalive = asyncio.get_running_loop().call_later(self._idle_timeout / 3, self._ping)

    def _ping(self) -> None:
        assert self._protocol is not None
        self._protocol.send_keepalive()
        self._schedule_keepalive()
