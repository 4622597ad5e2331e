"""A reference "echo agent" for Trunkline's QUIC AI bridge (PROTOCOL.md §7), over WebTransport.

It exists so gateway code (and anyone writing a real agent) has a small, readable counterpart to
test against: it accepts WebTransport sessions, echoes every caller frame straight back on the same
call, records what the gateway told it, and plays a per-call *script* from ``custom_parameters`` so
the agent-initiated paths (marks, clear, DTMF, transfer, hang-up) can be exercised on demand.

Script: ``custom_parameters["script"]`` is a space-separated list of ``<ms>:<action>[=<arg>]``
steps, each run that many milliseconds after ``job_assign``. Actions: ``mark=NAME`` (flush with
a mark; the gateway answers ``playout`` once it is heard), ``flush`` (no mark), ``clear``,
``dtmf=DIGITS``, ``transfer=TARGET``, ``hangup`` (agent ``shutdown``). Example:
``"200:mark=greeting 1500:hangup"``. A bad step is logged and skipped.

Run it standalone (a self-signed certificate is made in a temp dir unless you give one)::

    python examples/quic_agent/server.py --port 4433

or import it and ``await EchoAgentServer(cert, key, port=0).start()`` in-process, as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DatagramReceived, H3Event, HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration

from trunkline.ai.events import (
    AgentClear,
    AgentDtmf,
    AgentEvent,
    AgentHangup,
    AgentMark,
    AgentProtocolError,
    AgentTransfer,
)
from trunkline.ai.quic_protocol import (
    HEADER,
    BargeIn,
    CallEnded,
    CallerDtmf,
    GatewayMessage,
    JobAssign,
    LineSplitter,
    Playout,
    SeqCounter,
    SeqWindow,
    encode_agent_message,
    pack_audio,
    parse_gateway_message,
    unpack_audio,
)
from trunkline.certs import ensure_certificate

log = logging.getLogger("quic_agent")


@dataclass
class Job:
    """One call as the agent sees it, plus a record of what the gateway said (tests read this)."""

    assign: JobAssign
    seq: SeqCounter = field(default_factory=SeqCounter)
    window: SeqWindow = field(default_factory=SeqWindow)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    frames_echoed: int = 0
    playouts: list[str] = field(default_factory=list)
    barge_ins: int = 0
    caller_digits: str = ""
    ended: bool = False


def parse_script(script: str) -> list[tuple[float, AgentEvent | None]]:
    """``"200:mark=a 900:hangup"`` -> [(0.2, AgentMark("a")), (0.9, AgentHangup())]; None = flush."""
    steps: list[tuple[float, AgentEvent | None]] = []
    for step in script.split():
        when, _, action = step.partition(":")
        name, _, arg = action.partition("=")
        try:
            delay = int(when) / 1000.0
        except ValueError:
            log.warning("script step %r: %r is not milliseconds", step, when)
            continue
        event: AgentEvent | None
        if name == "mark" and arg:
            event = AgentMark(arg)
        elif name == "flush":
            event = None
        elif name == "clear":
            event = AgentClear()
        elif name == "dtmf" and arg:
            event = AgentDtmf(arg)
        elif name == "transfer" and arg:
            event = AgentTransfer(arg)
        elif name == "hangup":
            event = AgentHangup()
        else:
            log.warning("script step %r: unknown action", step)
            continue
        steps.append((delay, event))
    return steps


class AgentSession(QuicConnectionProtocol):
    """One gateway connection: a WebTransport session whose first bidi stream is the control stream."""

    def __init__(self, *args: Any, server: EchoAgentServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server = server
        self._http: H3Connection | None = None
        self._session_id: int | None = None
        self._control_id: int | None = None
        self._lines = LineSplitter()
        self._jobs: dict[int, Job] = {}

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._http = H3Connection(self._quic, enable_webtransport=True)
        elif isinstance(event, quic_events.ConnectionTerminated):
            for call_id in list(self._jobs):
                self._end(call_id)
        if self._http is not None:
            for h3_event in self._http.handle_event(event):
                self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        assert self._http is not None
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            wanted = (headers.get(b":method") == b"CONNECT" and headers.get(b":protocol") == b"webtransport"
                      and headers.get(b":path", b"").decode().split("?")[0] == self._server.path)
            if wanted and self._session_id is None:
                self._session_id = event.stream_id
                self._server.sessions.append(self)
                self._http.send_headers(event.stream_id, [(b":status", b"200"),
                                                          (b"sec-webtransport-http3-draft", b"draft02")])
            else:
                self._http.send_headers(event.stream_id, [(b":status", b"404")], end_stream=True)
        elif isinstance(event, WebTransportStreamDataReceived) and event.session_id == self._session_id:
            if self._control_id is None and event.stream_id & 0x3 == 0:
                self._control_id = event.stream_id
            if event.stream_id == self._control_id:
                self._control(event.data)
        elif isinstance(event, DatagramReceived) and event.stream_id == self._session_id:
            self._audio(event.data)

    def _control(self, data: bytes) -> None:
        for line in self._lines.feed(data):
            try:
                if isinstance(line, AgentProtocolError):
                    raise line
                self._message(parse_gateway_message(line))
            except AgentProtocolError as exc:
                log.warning("dropped control line: %s", exc)

    def _message(self, msg: GatewayMessage) -> None:
        if isinstance(msg, JobAssign):
            if msg.call_id in self._jobs:  # the gateway reused an id it never shut down: start afresh
                self._end(msg.call_id)
            new = self._jobs[msg.call_id] = Job(msg)
            self._server.jobs.append(new)
            loop = asyncio.get_running_loop()
            for delay, action in parse_script(msg.custom_parameters.get("script", "")):
                new.timers.append(loop.call_later(delay, self._send, msg.call_id, action))
            log.info("call %d: job %s from %s to %s", msg.call_id, msg.call_sid, msg.call_from, msg.to)
            return
        job = self._jobs.get(msg.call_id)
        if job is None:
            log.debug("%s for call %d, which has no job", type(msg).__name__, msg.call_id)
        elif isinstance(msg, Playout):
            job.playouts.append(msg.mark)
        elif isinstance(msg, BargeIn):
            job.barge_ins += 1
        elif isinstance(msg, CallerDtmf):
            job.caller_digits += msg.digit
        elif isinstance(msg, CallEnded):
            self._end(msg.call_id)

    def _audio(self, data: bytes) -> None:
        if len(data) < HEADER.size or (job := self._jobs.get(HEADER.unpack_from(data)[2])) is None:
            return
        try:
            frame = unpack_audio(data, job.assign.sample_rate)
        except AgentProtocolError as exc:
            log.warning("dropped datagram: %s", exc)
            return
        if job.window.accept(frame.seq):
            self.send_datagram(pack_audio(frame.call_id, job.seq.next(), frame.pcm))
            job.frames_echoed += 1

    def _send(self, call_id: int, event: AgentEvent | None) -> None:
        if call_id in self._jobs:
            self.send_control(encode_agent_message(call_id, event))

    def send_control(self, data: bytes) -> None:
        """Raw bytes on the control stream; public so tests can also send what a buggy agent would."""
        if self._control_id is not None:
            self._quic.send_stream_data(self._control_id, data)
            self.transmit()

    def send_datagram(self, datagram: bytes) -> None:
        """One raw datagram on the session; public for the same reason as :meth:`send_control`."""
        assert self._http is not None and self._session_id is not None
        self._http.send_datagram(self._session_id, datagram)
        self._transmit_soon()

    def _end(self, call_id: int) -> None:
        job = self._jobs.pop(call_id)
        job.ended = True
        for timer in job.timers:
            timer.cancel()


class EchoAgentServer:
    """Listens for WebTransport sessions on ``https://host:port/path``; ``port=0`` picks a free one."""

    def __init__(self, certificate: Path, private_key: Path, *, host: str = "127.0.0.1", port: int = 4433,
                 path: str = "/agent", idle_timeout: float = 30.0) -> None:
        self.host, self.path = host, path
        self._requested_port = port
        self._config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536,
                                         idle_timeout=idle_timeout)
        self._config.load_cert_chain(certificate, private_key)
        self._server: QuicServer | None = None
        self.jobs: list[Job] = []
        self.sessions: list[AgentSession] = []

    async def start(self) -> None:
        self._server = await serve(self.host, self._requested_port, configuration=self._config,
                                   create_protocol=partial(AgentSession, server=self))

    @property
    def port(self) -> int:
        assert self._server is not None and self._server._transport is not None, "start() first"
        return int(self._server._transport.get_extra_info("sockname")[1])

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}{self.path}"

    def close(self) -> None:
        """Stop listening and close every session (the gateway sees the connection end)."""
        if self._server is not None:
            self._server.close()
            self._server = None


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4433)
    parser.add_argument("--path", default="/agent")
    parser.add_argument("--cert", type=Path, help="PEM certificate (default: a fresh self-signed one)")
    parser.add_argument("--key", type=Path, help="PEM private key for --cert")
    args = parser.parse_args()
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    with tempfile.TemporaryDirectory(prefix="quic-agent-") as scratch:
        if args.cert is None:
            names = dict.fromkeys(("localhost", "127.0.0.1", "::1", args.host))  # ordered, no duplicates
            material = ensure_certificate(Path(scratch), datetime.now(UTC), hostnames=tuple(names))
            args.cert, args.key = material.cert_path, material.key_path
        server = EchoAgentServer(args.cert, args.key, host=args.host, port=args.port, path=args.path)
        await server.start()
        print(f"echo agent on {server.url} (certificate {args.cert})", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            server.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass
