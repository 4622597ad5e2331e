"""Every RFC 4475 torture message, sent as its exact bytes over UDP to a started endpoint.

Each gets the answer the RFC asks of a user agent that is not a proxy or registrar: valid
requests are answered as their method deserves (new INVITEs reach the inbound seam, which declines
them), invalid ones get 400 naming the defect, or 505/416/420/415/406/405/501, and responses that
match no transaction get nothing. The peer sits on its own 127/8 address at port 5060 (and 5050)
because the messages' Vias name no port or those ports, and answers follow the Via (§18.2.2).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from trunkline.sip.message import parse_message
from trunkline.sip_engine import IncomingInvite, SipEndpoint, SipTarget, SipTransportError

from .conftest import WAIT_S

DATA = Path(__file__).parent.parent / "sip" / "data" / "rfc4475"

# name: (status, what the reason phrase names; None: no answer at all)
OUTCOMES: dict[str, tuple[int, str] | None] = {
    "wsinv": (481, ""), "intmeth": (501, ""), "esc01": (603, ""), "escnull": (405, ""),
    "esc02": (501, ""), "lwsdisp": (200, ""), "longreq": (603, ""), "dblreq": (405, ""),
    "semiuri": (200, ""), "transports": (200, ""), "mpart01": (405, ""), "unreason": None,
    "noreason": None, "badinv01": (400, "bad parameter name"),
    "clerr": (400, "body shorter than Content-Length"), "ncl": (400, "bad Content-Length"),
    "scalar02": (400, "bad CSeq number"), "scalarlg": None,
    "quotbal": (400, "unterminated quoted string"), "ltgtruri": (400, "bad Request-URI"),
    "lwsruri": (400, "whitespace inside the Request-URI"),
    "lwsstart": (400, "more than one space"), "trws": (400, "spaces after the SIP version"),
    "escruri": (400, "headers in the Request-URI"), "baddate": (603, ""),
    "regbadct": (400, "Contact: URI with headers outside <>"),
    "badaspec": (400, "whitespace inside <sip:t.watson@example.org>"),
    "baddn": (400, "unquoted display name"), "badvers": (505, "SIP/7.0"),
    "mismatch01": (400, "CSeq method does not match"), "mismatch02": (501, "CSeq method"),
    "bigcode": None, "badbranch": (200, ""), "bcast": None, "bext01": (420, ""),
    "cparam01": (405, ""), "cparam02": (405, ""), "insuf": (400, "missing From"),
    "inv2543": (603, ""), "invut": (415, "application/unknownformat"),
    "mcl01": (400, "conflicting Content-Length"), "multi01": (400, "more than one Call-ID"),
    "novelsc": (416, "soap.beep"), "regaut01": (405, ""), "regescrt": (405, ""),
    "sdp01": (406, ""), "unkscm": (416, "nobodyknowsthisscheme"), "unksm2": (405, ""),
    "zeromf": (200, ""),
}

_CALL_ID = re.compile(rb"^(?:Call-ID|i)\s*:\s*(\S+)", re.I | re.M)


class Peer(asyncio.DatagramProtocol):
    """One of the peer's sockets; everything either receives lands in one shared queue."""

    def __init__(self, inbox: asyncio.Queue[bytes]) -> None:
        self.inbox = inbox
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(data)


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Peer, asyncio.Queue[bytes]]]:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    host = f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    main = (await loop.create_datagram_endpoint(lambda: Peer(inbox), local_addr=(host, 5060)))[1]
    side = (await loop.create_datagram_endpoint(lambda: Peer(inbox), local_addr=(host, 5050)))[1]
    yield main, inbox
    for p in (main, side):
        assert p.transport is not None
        p.transport.close()


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[SipEndpoint, list[IncomingInvite]]]:
    ep = SipEndpoint("127.0.0.1", 0)
    seen: list[IncomingInvite] = []

    def decline(incoming: IncomingInvite) -> None:
        seen.append(incoming)
        incoming.respond(603)

    ep.on_incoming(decline)
    await ep.start()
    yield ep, seen
    await ep.close()


def test_the_table_covers_all_49_messages() -> None:
    assert sorted(path.stem for path in DATA.glob("*.dat")) == sorted(OUTCOMES)
    assert len(OUTCOMES) == 49


@pytest.mark.parametrize("name", sorted(OUTCOMES))
async def test_each_message_gets_the_rfc_answer(
    name: str, gateway: tuple[SipEndpoint, list[IncomingInvite]],
    peer: tuple[Peer, asyncio.Queue[bytes]],
) -> None:
    endpoint, seen = gateway
    sender, inbox = peer
    assert sender.transport is not None
    data = (DATA / f"{name}.dat").read_bytes()
    found = _CALL_ID.search(data)
    call_id = found.group(1) if found else None
    sender.transport.sendto(data, endpoint.address)
    # An OPTIONS behind it: its 200 proves every answer to the message has already come.
    sentinel = f"sentinel-{name}".encode()
    sender.transport.sendto(
        b"OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP sentinel.invalid;branch=z9hG4bK"
        + sentinel + b"\r\nMax-Forwards: 70\r\nFrom: <sip:t@example.com>;tag=1\r\n"
        b"To: <sip:gw@127.0.0.1>\r\nCall-ID: " + sentinel + b"\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n", endpoint.address)
    finals: list[bytes] = []
    while True:
        answer = await asyncio.wait_for(inbox.get(), WAIT_S)
        if b"\r\nCall-ID: " + sentinel + b"\r\n" in answer:
            break
        own = call_id is None or b"\r\nCall-ID: " + call_id + b"\r\n" in answer \
            or b"\r\ni: " + call_id + b"\r\n" in answer
        if own and not answer.startswith(b"SIP/2.0 100 "):
            finals.append(answer)

    expected = OUTCOMES[name]
    if expected is None:
        assert finals == []
        assert endpoint.stats.stray_responses + endpoint.stats.parse_errors == 1
        return
    status, defect = expected
    assert finals, f"{name} got no answer"
    status_line = finals[0].split(b"\r\n", 1)[0].decode("utf-8")
    assert status_line.startswith(f"SIP/2.0 {status} "), status_line
    assert defect in status_line or defect in status_line.lower()
    if status == 603:  # reached the inbound seam as a parsed INVITE
        assert [incoming.request.call_id.encode() for incoming in seen] == [call_id]
    else:
        assert seen == []
    if name == "bext01":
        assert b"\r\nUnsupported: nothingSupportsThis, nothingSupportsThisEither\r\n" in finals[0]
    if name == "invut":
        assert b"\r\nAccept: application/sdp\r\n" in finals[0]
    if status in (405, 501):
        assert b"\r\nAllow: INVITE, " in finals[0]


async def test_an_oversize_response_fails_its_request_at_once(
    peer: tuple[Peer, asyncio.Queue[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    """A 200 with 2,000 headers cannot be read; the OPTIONS fails now, not after timer F (32 s)."""
    sender, inbox = peer
    assert sender.transport is not None
    host, port = sender.transport.get_extra_info("sockname")[:2]
    endpoint = SipEndpoint("127.0.0.1", 0)
    await endpoint.start()
    try:
        pending = asyncio.ensure_future(endpoint.options(SipTarget(host, port)))
        request = parse_message(await asyncio.wait_for(inbox.get(), WAIT_S))
        head = b"".join(f"{name}: {request.headers.get(name)}\r\n".encode()
                        for name in ("Via", "From", "To", "Call-ID", "CSeq"))
        sender.transport.sendto(b"SIP/2.0 200 OK\r\n" + head + b"X-Pad: x\r\n" * 2000
                                + b"Content-Length: 0\r\n\r\n", endpoint.address)
        with pytest.raises(SipTransportError):
            await asyncio.wait_for(pending, WAIT_S)
        assert endpoint.stats.transactions_active == 0
        assert any("200 response to OPTIONS" in r.getMessage() for r in caplog.records)
    finally:
        await endpoint.close()
