"""SIP over TLS to a trunk (RFC 3261 §26): a carrier whose certificate chains to the trunk's tls_ca
is called and carries audio; one whose certificate comes from another CA fails the call FAILED/27.

Debian's SIPp is built without TLS, so the carrier here is a small TLS UAS: 100 and 200 (SDP naming
a UDP echo) to INVITE, 200 to BYE, over the connection the request came on.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import wait_until
from tests.e2e.calls import watched_client
from trunkline.certs.ca import ensure_ca
from trunkline.certs.local import ensure_certificate
from trunkline.enums import DialplanAction
from trunkline.sip.message import SipRequest, StreamParser, build_response
from trunkline.sip_engine import SipEndpoint, SipTarget

TO = "+15551234567"


class Echo(asyncio.DatagramProtocol):
    """The carrier's media: every RTP packet goes back where it came from."""

    def __init__(self) -> None:
        self.packets = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.packets += 1
        assert self.transport is not None
        self.transport.sendto(data, addr)


class TlsUas:
    """Answers INVITEs over TLS with SDP pointing at ``echo_port``; keeps the requests it got."""

    def __init__(self, echo_port: int) -> None:
        self.echo_port = echo_port
        self.port = 0  # where it listens, for its Contact
        self.requests: list[SipRequest] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = StreamParser()
        while data := await reader.read(65536):
            for message in parser.feed(data):
                if not isinstance(message, SipRequest):
                    continue
                self.requests.append(message)
                for response in self.answer(message):
                    writer.write(response.to_bytes())
        writer.close()

    def answer(self, request: SipRequest) -> list:
        if request.method == "INVITE":
            sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {self.echo_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n").encode()
            return [build_response(request, 100),
                    build_response(request, 200, to_tag="uas", body=sdp, headers=(
                        ("Contact", f"<sip:uas@127.0.0.1:{self.port};transport=tls>"), ("Content-Type", "application/sdp")))]
        if request.method in ("BYE", "OPTIONS"):
            return [build_response(request, 200)]
        return []


def _certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A CA of its own in ``folder`` and a leaf for localhost it issued: (CA, leaf, key)."""
    now = datetime.now(timezone.utc)
    ca = ensure_ca(folder, now)
    leaf = ensure_certificate(folder, now, ("localhost", "127.0.0.1"), ca=ca)
    return ca.cert_path, leaf.cert_path, leaf.key_path


async def _carrier(tmp_path: Path, name: str):
    """A TLS UAS with a certificate from its own CA, its echo, and that CA's file."""
    ca, cert, key = _certificate(tmp_path / name)
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    uas = TlsUas(echo_transport.get_extra_info("sockname")[1])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(uas.serve, "127.0.0.1", 0, ssl=context)
    uas.port = server.sockets[0].getsockname()[1]
    return server, uas, echo, echo_transport, ca


async def test_a_tls_carrier_the_trunk_trusts_is_called_and_carries_audio(start_gateway, tmp_path):
    server, uas, echo, echo_transport, ca = await _carrier(tmp_path, "carrier")
    try:
        gateway = await start_gateway({"trunks": [{
            "id": "carrier", "host": "localhost", "port": uas.port,
            "transport": "tls", "tls_ca": str(ca), "keepalive_s": 0}]})
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.MUSIC_ON_HOLD)
        await watch.until(call.call_sid, "ANSWERED", timeout=10)
        await wait_until(lambda: echo.packets >= 25, "hold music at the carrier's echo")
        await client.terminate(call.call_sid)
        hangup = await watch.hangup(call.call_sid)
        assert hangup.status == "COMPLETED" and hangup.packets_received >= 20  # the echo came back
        await wait_until(lambda: any(r.method == "BYE" for r in uas.requests), "the BYE over TLS")
        invite = uas.requests[0]
        assert invite.headers.get("Via").startswith("SIP/2.0/TLS ")
        assert ";transport=tls>" in invite.headers.get("Contact")
    finally:
        server.close()
        echo_transport.close()


async def test_a_tls_carrier_with_an_untrusted_certificate_fails_with_cause_27(start_gateway, tmp_path, caplog):
    server, uas, _, echo_transport, _ = await _carrier(tmp_path, "stranger")
    trusted, _, _ = _certificate(tmp_path / "trusted")  # the trunk trusts this CA, not the carrier's
    try:
        gateway = await start_gateway({"trunks": [{
            "id": "carrier", "host": "localhost", "port": uas.port,
            "transport": "tls", "tls_ca": str(trusted), "keepalive_s": 0}]})
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier")
        hangup = await watch.hangup(call.call_sid, timeout=10)  # at once, not after timer B (32 s)
        assert (hangup.status, hangup.q850_cause) == ("FAILED", 27)
        assert not uas.requests
        assert "certificate refused: " in caplog.text
    finally:
        server.close()
        echo_transport.close()


async def test_the_gateway_answers_sip_over_tls_on_tls_listen(start_gateway, tmp_path):
    ca, cert, key = _certificate(tmp_path / "gateway")
    gateway = await start_gateway({"sip": {"tls_listen": "127.0.0.1:0", "tls_cert_file": str(cert),
                                           "tls_key_file": str(key)}})
    assert gateway.sip.tls_address is not None
    trusting = ssl.create_default_context(cafile=str(ca))
    client = SipEndpoint("127.0.0.1", 0, tls_client=lambda _target: (trusting, "localhost"))
    await client.start()
    try:
        assert await client.options(SipTarget("127.0.0.1", gateway.sip.tls_address[1], "tls")) == 200
    finally:
        await client.close()
