"""The asyncio SIP endpoint: transports, the transaction/timer driver and request routing.

One :class:`SipEndpoint` owns a UDP socket and a TCP listener on the same port, the core's
:class:`~trunkline.sip.transaction.TransactionTable` and exactly one event-loop timer handle, always
re-armed to the table's earliest deadline: thousands of transactions cost one heap, not one task or
timer each. Incoming bytes are parsed, matched to transactions, and otherwise routed to the dialog
they name (calls), to the out-of-dialog answers (OPTIONS, 480/481/501) or to the inbound seam.
Everything runs in event-loop callbacks; the only tasks are TCP connects, one per connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from trunkline.sip.digest import DigestClient
from trunkline.sip.intake import refusal
from trunkline.sip.message import (
    DEFAULT_LIMITS,
    KNOWN_METHODS,
    REASON_PHRASES,
    Headers,
    ParserLimits,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    build_rejection,
    build_response,
    generate_branch,
    generate_call_id,
    generate_tag,
    parse_message,
)
from trunkline.sip.session_timer import SessionTimers
from trunkline.sip.transaction import (
    Action,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Terminated,
    TimerConfig,
    Transaction,
    TransactionTable,
    TransactionTimeout,
    Transmit,
    TransportError,
    TwoXXRetransmitter,
)

from .routing import Credentials, RedirectPolicy, SipTarget, response_target, stamp_via
from .transport import TcpConnection, UdpProtocol

if TYPE_CHECKING:
    from .call import CallListener, OutgoingCall
    from .registration import Registration

__all__ = [
    "ALLOW",
    "AuthRetry",
    "DialogUser",
    "EndpointStats",
    "IncomingInvite",
    "SipEndpoint",
    "SipTimeoutError",
    "SipTransportError",
    "merge_headers",
    "uri_hostport",
]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
"""Methods the engine answers inside a dialog, advertised in Allow headers."""

_NO_DIALOG_METHODS = frozenset(("BYE", "INFO", "UPDATE", "PRACK", "NOTIFY", "REFER"))
"""Methods that only make sense in a dialog: without a To tag they get 481 (RFC 3261 §12.2.2)."""

_DIALOG_CREATING = frozenset(("INVITE", "SUBSCRIBE", "REFER"))
"""Out-of-dialog requests that would start a dialog or subscription: screened by source."""

STRANGER_LOG_INTERVAL_S = 60.0
"""At most one log line per this many seconds about requests refused for their source."""

AUTH_RETRIES = 3
"""Challenges answered per request before giving up: guards against a server that keeps issuing
fresh or stale nonces, on top of :class:`DigestClient`'s wrong-password detection."""


class SipTimeoutError(TimeoutError):
    """A request got no final response before its transaction timer (B or F) expired."""


class SipTransportError(ConnectionError):
    """The transport failed to carry a request (TCP connect refused or connection lost, a TLS
    certificate refused)."""

TlsClient = Callable[[SipTarget], tuple[ssl.SSLContext, str]]
"""How to open TLS to a target: the context (trust, client certificate) and the name its certificate
must carry (the trunk's host name, not the address it resolved to)."""


class EndpointStats:
    """Counters for monitoring; ``transactions_active`` is read live from the table."""

    __slots__ = (
        "_table", "messages_in", "messages_out", "parse_errors", "retransmissions",
        "stray_responses", "handler_errors", "transport_errors", "strangers_refused",
    )

    def __init__(self, table: TransactionTable) -> None:
        self._table = table
        self.messages_in = 0
        self.messages_out = 0
        self.parse_errors = 0
        self.retransmissions = 0
        self.stray_responses = 0
        self.handler_errors = 0
        self.transport_errors = 0
        self.strangers_refused = 0

    @property
    def transactions_active(self) -> int:
        return len(self._table)


ErrorCallback = Callable[[int, str], None]
MessageCallback = Callable[[SipRequest | SipResponse], None]


class _Ctx:
    """What the endpoint knows about a live transaction: where it sends and who listens."""

    __slots__ = ("target", "on_message", "on_error")

    def __init__(
        self, target: SipTarget, on_message: MessageCallback | None, on_error: ErrorCallback | None
    ) -> None:
        self.target = target
        self.on_message = on_message
        self.on_error = on_error


class DialogUser(Protocol):
    """A call that owns a dialog and answers the requests arriving in it."""

    def _handle_request(self, request: SipRequest, txn: InviteServerTransaction
                        | NonInviteServerTransaction) -> None: ...

    def _stray_2xx(self, response: SipResponse) -> None: ...


class IncomingInvite:
    """An out-of-dialog INVITE handed to the :meth:`SipEndpoint.on_incoming` handler.

    This is the seam for inbound calls: the handler may send provisional responses and reject
    the call. Accepting (2xx, UAS dialog) arrives with the inbound-call work. ``on_cancel`` is
    called when the caller CANCELs; the engine has then already answered 200 and 487.
    """

    def __init__(self, endpoint: SipEndpoint, request: SipRequest,
                 txn: InviteServerTransaction, source: SipTarget) -> None:
        self._endpoint = endpoint
        self._txn = txn
        self.request = request
        self.source = source
        self.local_tag = generate_tag()
        self.on_cancel: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        """True until a final response was sent (by the handler or because of a CANCEL)."""
        return self._txn in self._endpoint._incoming

    def respond(self, status: int, reason: str | None = None, *,
                headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> None:
        """Send a provisional (101-199) or a rejection (300-699); 2xx is not supported yet."""
        if 200 <= status < 300 or not 101 <= status < 700:
            raise ValueError(f"an incoming INVITE can only get 101-199 or 300-699, not {status}")
        if not self.pending:
            return
        if status >= 300:
            del self._endpoint._incoming[self._txn]
        response = build_response(self.request, status, reason, to_tag=self.local_tag,
                                  headers=headers, body=body)
        self._endpoint._respond(self._txn, response)

    def _cancelled(self) -> None:
        self.respond(487)
        if self.on_cancel is not None:
            self.on_cancel()


class SipEndpoint:
    """A SIP user agent on one address: UDP and TCP transports, transactions, calls, pings.

    ``advertised_host`` is what goes into Via and Contact; it defaults to ``listen_host`` (or,
    for a wildcard listen address, to the local address the OS would use toward each target).
    ``tls_listen`` with ``tls_server`` (the context holding our certificate) also accepts SIP over
    TLS; ``tls_client`` says how to connect to ``tls`` targets.
    """

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        *,
        user_agent: str = "Trunkline",
        timers: TimerConfig | None = None,
        advertised_host: str | None = None,
        limits: ParserLimits = DEFAULT_LIMITS,
        session_timers: SessionTimers | None = SessionTimers(),
        tls_listen: tuple[str, int] | None = None,
        tls_server: ssl.SSLContext | None = None,
        tls_client: TlsClient | None = None,
    ) -> None:
        self.listen_host = listen_host
        self.tls_listen = tls_listen
        self.tls_server = tls_server
        """Our TLS certificate for ``tls_listen``; may be set until :meth:`start`."""
        self.tls_client = tls_client
        """Where ``tls`` targets get their context and expected name; None: the system's trust
        store and the target's address."""
        self._tls_listener: asyncio.Server | None = None
        self._tls_port = 0
        self.listen_port = listen_port
        self.user_agent = user_agent
        self.timers = timers or TimerConfig()
        self.session_timers = session_timers
        """RFC 4028 wishes for our calls' INVITEs and answers; None: no session timers at all."""
        self.limits = limits
        self._advertised = advertised_host or (
            None if listen_host in ("", "0.0.0.0", "::") else listen_host
        )
        self._local_for: dict[str, str] = {}
        self._table = TransactionTable()
        self.stats = EndpointStats(self._table)
        self._ctx: dict[Transaction, _Ctx] = {}
        self._dialogs: dict[tuple[str, str, str], DialogUser] = {}
        self._incoming: dict[InviteServerTransaction, IncomingInvite] = {}
        self._incoming_handler: Callable[[IncomingInvite], None] | None = None
        self._calls: set[OutgoingCall] = set()
        self._registrations: set[Registration] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp: dict[SipTarget, TcpConnection] = {}
        self._connects: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._port = 0
        self._admits: Callable[[SipTarget], bool] | None = None
        self._strangers_logged_at = float("-inf")
        self._strangers_unlogged = 0
        self.on_transport_failure: Callable[[SipTarget, str], None] | None = None
        """Told once per transport failure that failed requests (ICMP unreachable, TCP refused or
        lost): how trunk health learns of a dead trunk without waiting for its next ping."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def tls_address(self) -> tuple[str, int] | None:
        """The bound TLS (host, port), when listening for TLS; valid after :meth:`start`."""
        return None if self.tls_listen is None else (self.tls_listen[0], self._tls_port)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), shared by UDP and TCP; valid after :meth:`start`."""
        if self._udp is None:
            raise RuntimeError("endpoint not started")
        return self.listen_host, self._port

    async def start(self) -> None:
        """Bind UDP and a TCP listener on the same port (port 0: the OS picks one for both)."""
        if self._loop is not None:
            raise RuntimeError("endpoint already started")
        loop = asyncio.get_running_loop()
        attempts = 20 if self.listen_port == 0 else 1
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: UdpProtocol(self), local_addr=(self.listen_host, self.listen_port)
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                server = await loop.create_server(
                    lambda: TcpConnection(self, None, self.limits), self.listen_host, port,
                    reuse_address=True,
                )
            except OSError:
                udp.close()
                if attempt + 1 == attempts:
                    raise
                continue
            break
        self._loop = loop
        self._udp = udp
        self._tcp_server = server
        _widen_receive_buffer(udp.get_extra_info("socket"))
        self._port = port
        if self.tls_listen is not None:
            if self.tls_server is None:
                raise ValueError("tls_listen needs a tls_server context with our certificate")
            self._tls_listener = await loop.create_server(
                lambda: TcpConnection(self, None, self.limits, "tls"), *self.tls_listen,
                ssl=self.tls_server, reuse_address=True)
            self._tls_port = self._tls_listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Close transports and timers. Sends nothing: live calls end locally (on_terminated)."""
        for call in list(self._calls):
            call._endpoint_closed()
        for registration in list(self._registrations):
            registration._endpoint_closed()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for ctx in list(self._ctx.values()):
            if ctx.on_error is not None:
                ctx.on_error(503, "Endpoint Closed")
        self._ctx.clear()
        for task in list(self._connects):
            task.cancel()
        for conn in list(self._tcp.values()):
            conn.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for server in (self._tcp_server, self._tls_listener):
            if server is not None:
                server.close()
                await server.wait_closed()
        self._tcp_server = self._tls_listener = None

    def on_incoming(self, handler: Callable[[IncomingInvite], None] | None) -> None:
        """Route out-of-dialog INVITEs to ``handler``; without one they are answered 480."""
        self._incoming_handler = handler

    def admit_only(self, admits: Callable[[SipTarget], bool] | None) -> None:
        """Answer dialog-creating requests from sources ``admits`` refuses with one stateless 403.

        No transaction is kept for them, so a spoofed source cannot turn one packet into eleven
        retransmitted answers (PROTOCOL.md §6 Inbound). None admits everyone.
        """
        self._admits = admits

    # ------------------------------------------------------------------ public requests

    def invite(
        self,
        target: SipTarget,
        request_uri: str,
        from_uri: str,
        to_uri: str,
        sdp: bytes,
        listener: CallListener,
        credentials: Credentials | None = None,
        headers: Sequence[tuple[str, str]] = (),
        redirects: RedirectPolicy | None = None,
    ) -> OutgoingCall:
        """Place a call; returns at once, progress arrives through ``listener`` callbacks.

        3xx responses are followed only as ``redirects`` allows (None: never)."""
        from .call import OutgoingCall

        self._require_started()
        call = OutgoingCall(self, target, request_uri, from_uri, to_uri, sdp, listener,
                            credentials, headers, redirects)
        self._calls.add(call)
        call._start()
        return call

    async def options(self, target: SipTarget, request_uri: str | None = None) -> int:
        """Out-of-dialog OPTIONS (a trunk keepalive); returns the final status code.

        Raises :class:`SipTimeoutError` when unanswered and :class:`SipTransportError` when the
        transport fails.
        """
        loop = self._require_started()
        future: asyncio.Future[int] = loop.create_future()
        uri = request_uri or f"sip:{_hostport(target.host, target.port)}"
        call_id = generate_call_id()
        tag = generate_tag()
        local = f"<sip:{_hostport(self.sent_by_host(target), self._port)}>;tag={tag}"

        def build(seq: int, extra: Sequence[tuple[str, str]]) -> SipRequest:
            h = self.request_headers(target, call_id, seq, "OPTIONS", local, f"<{uri}>")
            h.add("Accept", "application/sdp")
            for name, value in extra:
                h.add(name, value)
            return SipRequest("OPTIONS", uri, h)

        def done(status: int, response: SipResponse | None) -> None:
            if future.done():
                return
            if response is not None:
                future.set_result(status)
            elif status == 408:
                future.set_exception(SipTimeoutError(f"no answer to OPTIONS from {target}"))
            else:
                future.set_exception(SipTransportError(f"OPTIONS to {target} failed ({status})"))

        AuthRetry(self, target, build, None, done).start()
        return await future

    def register(self, target: SipTarget, aor: str, credentials: Credentials | None,
                 expires: int = 3600) -> Registration:
        """Register ``aor`` at ``target`` and keep it refreshed until ``Registration.stop()``."""
        from .registration import Registration

        self._require_started()
        registration = Registration(self, target, aor, credentials, expires)
        self._registrations.add(registration)
        registration._start()
        return registration

    # ------------------------------------------------------------------ building blocks (calls)

    def sent_by_host(self, target: SipTarget) -> str:
        """Our address as the target should see it (Via sent-by and Contact host)."""
        if self._advertised is not None:
            return self._advertised
        host = self._local_for.get(target.host)
        if host is None:
            # A connected UDP socket sends nothing; it only asks the kernel for the route's source.
            with socket.socket(socket.AF_INET6 if ":" in target.host else socket.AF_INET,
                               socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((target.host, target.port))
                    host = str(probe.getsockname()[0])
                except OSError:
                    host = "127.0.0.1"
            self._local_for[target.host] = host
        return host

    def via(self, target: SipTarget) -> Via:
        """A Via for a request to ``target``, asking for rport (RFC 3581); branch added later."""
        return Via(target.transport.upper(), self.sent_by_host(target), self._port_for(target), {"rport": None})

    def contact(self, target: SipTarget, user: str | None = None) -> str:
        """Where ``target`` reaches us, over the transport it was reached by (a sip: URI with
        ``transport=tls`` for TLS, as RFC 3261 §26.2.2 allows for a sip: Request-URI)."""
        host = _hostport(self.sent_by_host(target), self._port_for(target))
        suffix = "" if target.transport == "udp" else f";transport={target.transport}"
        return f"<sip:{user}@{host}{suffix}>" if user else f"<sip:{host}{suffix}>"

    def _port_for(self, target: SipTarget) -> int:
        """Our TLS port for TLS targets when we listen for TLS; else the UDP/TCP port."""
        return self._tls_port if target.transport == "tls" and self._tls_port else self._port

    def request_headers(self, target: SipTarget, call_id: str, seq: int, method: str,
                        from_: str, to: str) -> Headers:
        """The mandatory headers of an out-of-dialog request, with a fresh branch."""
        via = self.via(target)
        via.params["branch"] = generate_branch()
        h = Headers()
        h.add("Via", str(via))
        h.add("Max-Forwards", "70")
        h.add("From", from_)
        h.add("To", to)
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{seq} {method}")
        h.add("User-Agent", self.user_agent)
        return h

    def start_client(self, request: SipRequest, target: SipTarget,
                     on_message: MessageCallback | None,
                     on_error: ErrorCallback | None) -> InviteClientTransaction | NonInviteClientTransaction:
        """Run a client transaction for ``request``; responses and failures go to the callbacks."""
        txn: InviteClientTransaction | NonInviteClientTransaction
        if request.method == "INVITE":
            txn = InviteClientTransaction(request, reliable=target.reliable, timers=self.timers)
        else:
            txn = NonInviteClientTransaction(request, reliable=target.reliable, timers=self.timers)
        loop = self._require_started()
        self._ctx[txn] = _Ctx(target, on_message, on_error)
        self._table.add(txn)
        self._apply(txn, txn.start(loop.time()))
        self._arm_timer()
        return txn

    def abandon(self, txn: InviteClientTransaction) -> None:
        """Forget an INVITE that never got a final response after its CANCEL (§9.1: 64*T1)."""
        self._ctx.pop(txn, None)
        txn.transport_error(self._now())

    def send_stateless(self, request: SipRequest, target: SipTarget) -> None:
        """Send outside any transaction: the ACK for a 2xx is its own transaction-less request."""
        self._send(target, request)

    def add_dialog(self, key: tuple[str, str, str], user: DialogUser) -> None:
        self._dialogs[key] = user

    def remove_dialog(self, key: tuple[str, str, str], user: DialogUser) -> None:
        if self._dialogs.get(key) is user:
            del self._dialogs[key]

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._require_started().call_later(delay, callback)

    def _require_started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._udp is None:
            raise RuntimeError("endpoint not started (or closed)")
        return self._loop

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # ------------------------------------------------------------------ timer driver

    def _arm_timer(self) -> None:
        """Keep the single timer handle at the table's earliest deadline.

        A handle that fires too early is harmless (it re-arms), so an earlier one is left alone.
        """
        deadline = self._table.next_timer()
        if deadline is None or self._loop is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # call_at may run a hair before the deadline (clock resolution); never tick short of it.
        now = max(self._now(), self._timer_at)
        for txn, action in self._table.handle_timer(now):
            if type(action) is Transmit:
                self.stats.retransmissions += 1
            try:
                self._apply_one(txn, action)
            except Exception:
                self.stats.handler_errors += 1
                log.exception("SIP timer action %r failed", action)
        self._arm_timer()

    # ------------------------------------------------------------------ actions and sending

    def _apply(self, txn: Transaction, actions: list[Action]) -> None:
        for action in actions:
            self._apply_one(txn, action)

    def _apply_one(self, txn: Transaction, action: Action) -> None:
        kind = type(action)
        if kind is Transmit:
            ctx = self._ctx.get(txn)
            if ctx is not None:
                self._send(ctx.target, action.message)  # type: ignore[union-attr]
        elif kind is Deliver:
            ctx = self._ctx.get(txn)
            if ctx is not None and ctx.on_message is not None:
                ctx.on_message(action.message)  # type: ignore[union-attr]
        elif kind is Terminated:
            self._ctx.pop(txn, None)
        else:
            ctx = self._ctx.get(txn)
            if ctx is not None and ctx.on_error is not None:
                if kind is TransactionTimeout:
                    ctx.on_error(408, "Request Timeout")
                elif kind is TransportError:
                    ctx.on_error(503, action.reason or "Service Unavailable")  # type: ignore[union-attr]

    def _send(self, target: SipTarget, message: SipRequest | SipResponse) -> None:
        data = message.to_bytes()
        self.stats.messages_out += 1
        if target.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (target.host, target.port))
            return
        conn = self._tcp.get(target)
        if conn is None or conn.closed:
            conn = self._tcp_connect(target)
        conn.send(data)

    def _respond(self, txn: InviteServerTransaction | NonInviteServerTransaction,
                 response: SipResponse, on_ack_timeout: Callable[[], None] | None = None,
                 on_ack: MessageCallback | None = None) -> None:
        """Answer a server transaction; a 2xx to INVITE is then retransmitted until its ACK,
        which ``on_ack`` gets (it may carry the SDP answer to an offer in the 2xx).

        The core's INVITE transaction sends that 2xx once and leaves retransmission to the UAS
        core (§13.3.1.4); :class:`TwoXXRetransmitter` would send it again on ``start``, so its
        first Transmit is dropped.
        """
        if txn.terminated:
            return
        now = self._now()
        self._apply(txn, txn.respond(response, now))
        if isinstance(txn, InviteServerTransaction) and 200 <= response.status < 300:
            ctx = self._ctx.get(txn)
            if ctx is not None:
                retransmitter = TwoXXRetransmitter(response, reliable=txn.reliable,
                                                   timers=self.timers)
                retransmitter.start(now)
                timeout: ErrorCallback | None = None
                if on_ack_timeout is not None:
                    callback = on_ack_timeout
                    timeout = lambda _status, _reason: callback()  # noqa: E731
                self._ctx[retransmitter] = _Ctx(ctx.target, on_ack, timeout)
                self._table.add(retransmitter)
        self._arm_timer()

    # ------------------------------------------------------------------ TCP

    def _tcp_connect(self, target: SipTarget) -> TcpConnection:
        conn = TcpConnection(self, target, self.limits)
        self._tcp[target] = conn
        loop = self._require_started()

        tls: dict[str, object] = {}
        if target.transport == "tls":
            context, server_name = (self.tls_client(target) if self.tls_client is not None
                                    else (ssl.create_default_context(), target.host))
            tls = {"ssl": context, "server_hostname": server_name}

        async def connect() -> None:
            try:
                await loop.create_connection(lambda: conn, target.host, target.port, **tls)  # type: ignore[arg-type]
            except OSError as exc:
                self.stats.transport_errors += 1
                conn.connection_lost(exc)

        task = loop.create_task(connect())
        self._connects.add(task)
        task.add_done_callback(self._connects.discard)
        return conn

    def _tcp_accepted(self, conn: TcpConnection) -> None:
        assert conn.target is not None
        self._tcp[conn.target] = conn

    def _tcp_lost(self, conn: TcpConnection, exc: Exception | None) -> None:
        """A lost connection fails every transaction that sends over it (§17.1.4, §17.2.4)."""
        target = conn.target
        if target is None:
            return
        if self._tcp.get(target) is conn:
            del self._tcp[target]
        reason = f"{target.transport.upper()} to {target.host}:{target.port}: {_describe(exc) if exc else 'connection closed'}"
        self._transport_failed(target, reason)

    def _udp_unreachable(self, target: SipTarget, what: str) -> None:
        """An ICMP error for ``target``: requests to it fail now, not at timer B or F."""
        self._transport_failed(target, f"UDP to {target.host}:{target.port}: {what} (ICMP)")

    def _transport_failed(self, target: SipTarget, reason: str) -> None:
        if self._loop is None:
            return
        now = self._now()
        failed = False
        for txn, ctx in list(self._ctx.items()):
            if ctx.target == target and not txn.terminated:
                failed = True
                self._apply(txn, txn.transport_error(now, reason))
        self._arm_timer()
        if failed:
            log.info("SIP transport failure: %s", reason)
            if self.on_transport_failure is not None:
                self.on_transport_failure(target, reason)

    # ------------------------------------------------------------------ receiving

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip(b"\r\n"):
            return  # RFC 5626 keepalive
        source = SipTarget(addr[0], addr[1], "udp")
        try:
            message = parse_message(data, self.limits)
        except SipParseError as exc:
            self._on_bad_message(exc, source)
            return
        self._on_message(message, source)

    def _on_bad_message(self, exc: SipParseError, source: SipTarget) -> None:
        """Answer a broken request with the status its defect deserves (§8.2, RFC 4475); end the
        client transaction an oversize response belongs to; drop anything else and count it."""
        self.stats.messages_in += 1
        self.stats.parse_errors += 1
        partial = exc.partial
        if isinstance(partial, SipResponse):
            if exc.status in (413, 513):
                self._fail_client(partial, source, exc.reason)
            return
        if partial is None or not exc.can_respond:
            return
        status = exc.status
        reason = f"{REASON_PHRASES.get(status, 'Bad Request')} ({exc.reason[:80]})"
        self._reject(partial, source, status, reason)

    def _reject(self, request: SipRequest, source: SipTarget, status: int, reason: str) -> None:
        """A stateless final response, to the top Via's address or, when it is unreadable, to the
        source itself."""
        try:
            via = stamp_via(request, source.host, source.port)
            target = source if source.reliable else response_target(via, "udp")
        except (SipParseError, ValueError):
            target = source
        response = build_rejection(request, status, reason)
        if status == 501:
            response.headers.add("Allow", ALLOW)
        try:
            self._send(target, response)
        except ValueError:
            return

    def _fail_client(self, response: SipResponse, source: SipTarget, reason: str) -> None:
        """An oversize response cannot be read, so its transaction fails now rather than at
        timer B or F, as if the transport had lost it."""
        try:
            txn = self._table.match_response(response)
            method = response.cseq.method
        except SipParseError:
            return
        if txn is None:
            return
        log.warning("SIP %d response to %s from %s:%d refused (%s); the request fails",
                    response.status, method, source.host, source.port, reason)
        self._apply(txn, txn.transport_error(self._now(), f"{response.status} response {reason}"))
        self._arm_timer()

    def _on_message(self, message: SipRequest | SipResponse, source: SipTarget) -> None:
        """Route one parsed message; a failing handler is logged, never raised into a transport."""
        self.stats.messages_in += 1
        try:
            if isinstance(message, SipResponse):
                self._on_response(message)
            else:
                self._on_request(message, source)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("SIP handler failed on %r", message)
        self._arm_timer()

    def _on_response(self, response: SipResponse) -> None:
        matched = self._table.receive(response, self._now())
        if matched is not None:
            self._apply(*matched)
            return
        # A 2xx retransmitted after the INVITE transaction ended still needs its ACK (§13.2.2.4).
        if 200 <= response.status < 300 and response.cseq.method == "INVITE":
            user = self._dialogs.get(
                (response.call_id, response.from_addr.tag or "", response.to_addr.tag or "")
            )
            if user is not None:
                user._stray_2xx(response)
                return
        self.stats.stray_responses += 1

    def _on_request(self, request: SipRequest, source: SipTarget) -> None:
        via = stamp_via(request, source.host, source.port)
        now = self._now()
        matched = self._table.receive(request, now)
        if matched is not None:
            known, actions = matched
            for action in actions:
                if type(action) is Transmit:
                    self.stats.retransmissions += 1
            self._apply(known, actions)
            return
        method = request.method
        if method == "ACK":
            return  # the ACK of a 2xx whose retransmitter already stopped, or of an unknown call
        to_tag = request.to_addr.tag
        if not to_tag and method in _DIALOG_CREATING and self._admits is not None \
                and not self._admits(source):
            self._refuse_stranger(request, source, now)
            return
        reply_to = source if source.reliable else response_target(via, "udp")
        txn: InviteServerTransaction | NonInviteServerTransaction
        if method == "INVITE":
            # Only a handler may take its time; everything else is answered right here.
            txn = InviteServerTransaction(
                request, reliable=source.reliable, timers=self.timers,
                auto_trying=not to_tag and self._incoming_handler is not None)
        else:
            txn = NonInviteServerTransaction(request, reliable=source.reliable, timers=self.timers)
        self._ctx[txn] = _Ctx(reply_to, None, None)
        self._table.add(txn)
        self._apply(txn, txn.start(now))
        refused = refusal(request)
        if refused is not None:
            self._respond(txn, build_response(request, refused.status, refused.reason,
                                              to_tag=generate_tag(), headers=refused.headers))
        elif method == "CANCEL":
            self._on_cancel(request, txn)
        elif to_tag:
            user = self._dialogs.get((request.call_id, to_tag, request.from_addr.tag or ""))
            if user is None:
                self._respond(txn, build_response(request, 481))
            else:
                user._handle_request(request, txn)
        elif method == "OPTIONS":
            self._respond(txn, build_response(
                request, 200, to_tag=generate_tag(),
                headers=(("Allow", ALLOW), ("Accept", "application/sdp"),
                         ("Server", self.user_agent)),
            ))
        elif method == "INVITE":
            assert isinstance(txn, InviteServerTransaction)
            handler = self._incoming_handler
            if handler is None:
                self._respond(txn, build_response(request, 480, to_tag=generate_tag()))
            else:
                incoming = IncomingInvite(self, request, txn, reply_to)
                self._incoming[txn] = incoming
                handler(incoming)
        elif method in _NO_DIALOG_METHODS:
            self._respond(txn, build_response(request, 481))
        else:
            # §8.2.1: a method we know but do not serve is 405, one we never heard of 501.
            status = 405 if method in KNOWN_METHODS else 501
            self._respond(txn, build_response(request, status, to_tag=generate_tag(),
                                              headers=(("Allow", ALLOW),)))

    def _refuse_stranger(self, request: SipRequest, source: SipTarget, now: float) -> None:
        """One stateless 403, counted; logged once per interval with how many came meanwhile."""
        self.stats.strangers_refused += 1
        self._strangers_unlogged += 1
        self._reject(request, source, 403, "Forbidden")
        if now - self._strangers_logged_at >= STRANGER_LOG_INTERVAL_S:
            log.warning("SIP refused %d request(s) from addresses matching no trunk "
                        "(latest %s from %s:%d)", self._strangers_unlogged, request.method,
                        source.host, source.port)
            self._strangers_logged_at = now
            self._strangers_unlogged = 0

    def _on_cancel(self, cancel: SipRequest,
                   txn: InviteServerTransaction | NonInviteServerTransaction) -> None:
        """§9.2: 200 for a CANCEL that matches an INVITE we still hold, then 487 for the INVITE."""
        invite_txn = self._table.match_cancel(cancel)
        if invite_txn is None:
            self._respond(txn, build_response(cancel, 481))
            return
        incoming = self._incoming.get(invite_txn)
        to_tag = incoming.local_tag if incoming is not None else generate_tag()
        self._respond(txn, build_response(cancel, 200, to_tag=to_tag))
        if incoming is not None:
            incoming._cancelled()


class AuthRetry:
    """Sends a non-INVITE request and answers digest challenges with a fresh CSeq each time.

    ``build(seq, extra_headers)`` makes the request; ``done(status, response)`` gets the final
    response, or ``(408|503, None)`` on timeout or transport failure. Provisional responses are
    ignored.
    """

    __slots__ = ("_endpoint", "_target", "_build", "_digest", "_done", "_seq", "_request")

    def __init__(self, endpoint: SipEndpoint, target: SipTarget,
                 build: Callable[[int, Sequence[tuple[str, str]]], SipRequest],
                 auth: DigestClient | None, done: Callable[[int, SipResponse | None], None],
                 first_seq: int = 1) -> None:
        self._endpoint = endpoint
        self._target = target
        self._build = build
        self._digest = DigestRetries(auth)
        self._done = done
        self._seq = first_seq
        self._request: SipRequest | None = None

    def start(self) -> None:
        self._request = self._build(self._seq, self._digest.headers)
        self._endpoint.start_client(self._request, self._target, self._on_message, self._on_error)

    def _on_message(self, message: SipRequest | SipResponse) -> None:
        if not isinstance(message, SipResponse) or message.status < 200:
            return
        if message.status in (401, 407) and self._request is not None and self._digest.answer(message, self._request):
            self._seq += 1
            self.start()
            return
        self._done(message.status, message)

    def _on_error(self, status: int, reason: str) -> None:
        self._done(status, None)


#: Receive buffer asked for on the SIP UDP socket. Hundreds of calls ending at once answer hundreds
#: of BYEs in one burst; the default (~200 kB) overflowed and the dropped 200s left calls waiting
#: 32 s for timer F (bench/ai.py). The kernel caps this at net.core.rmem_max.
UDP_RECEIVE_BUFFER = 4 << 20


def _widen_receive_buffer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    except OSError as exc:  # not fatal: the default still works at lower burst sizes
        log.warning("could not enlarge the SIP receive buffer: %s", exc)


class DigestRetries:
    """The credentials one request has gathered answering 401/407 challenges, and how many it
    answered: the one place that decides whether a challenged request is sent again."""

    __slots__ = ("_auth", "headers", "count")

    def __init__(self, auth: DigestClient | None) -> None:
        self._auth = auth
        self.headers: list[tuple[str, str]] = []
        self.count = 0

    def answer(self, response: SipResponse, request: SipRequest) -> bool:
        """Add credentials answering ``response`` to ``request``'s retry; False when it must not be
        retried: no credentials, retries spent, or a challenge the digest client will not answer
        again (a wrong password fails instead of looping)."""
        if self._auth is None or self.count >= AUTH_RETRIES:
            return False
        try:
            extra = self._auth.answer(response, request.method, request.uri, request.body,
                                      previous=list(request.headers))
        except (SipParseError, ValueError):
            return False
        if not extra:
            return False
        self.count += 1
        self.headers = merge_headers(self.headers, extra)
        return True


def merge_headers(current: Sequence[tuple[str, str]],
                  new: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Replace credentials of the names in ``new`` (a 407 after a 401 keeps both kinds)."""
    names = {name.lower() for name, _ in new}
    return [(n, v) for n, v in current if n.lower() not in names] + list(new)


def _describe(exc: Exception) -> str:
    """Say "Connection refused", not asyncio's "Connect call failed ('10.0.0.1', 5060)", and
    which certificate check failed rather than an SSL errno."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def uri_hostport(uri: str) -> str:
    """The ``sip:host[:port]`` part of a SIP URI (the Request-URI of a REGISTER, §10.2)."""
    parsed = SipUri.parse(uri)
    host = parsed.host
    if parsed.port is not None:
        host = f"{host}:{parsed.port}"
    return f"{parsed.scheme}:{host}"

