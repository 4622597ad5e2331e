"""The endpoint's own duties, probed with raw datagrams and a second endpoint.

Raw sockets let a test send exactly the bytes a broken or hostile peer would, and read exactly
what comes back, without any SIP stack in between.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import cast

import pytest

from trunkline.sip.message import SipRequest, SipResponse, build_response, parse_message
from trunkline.sip_engine import (
    RedirectPolicy,
    SipEndpoint,
    SipTarget,
    SipTimeoutError,
    SipTransportError,
)

from trunkline.sip_engine.call import NO_RESPONSE, TRANSPORT_FAILED

from .conftest import OFFER, WAIT_S, Recorder, call_uris, needs_sipp, start_uas


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket on loopback that queues whatever it receives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def response(self) -> SipResponse:
        message = parse_message(await asyncio.wait_for(self.inbox.get(), WAIT_S))
        assert isinstance(message, SipResponse)
        return message


@pytest.fixture
async def raw() -> RawPeer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=("127.0.0.1", 0))
    yield peer
    assert peer.transport is not None
    peer.transport.close()


def request(method: str, *, via_host: str = "10.9.9.9", via_port: int = 5070, to_tag: str = "",
            extra: str = "", body: bytes = b"") -> bytes:
    to = "<sip:gw@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} sip:gw@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}:{via_port};rport;branch=z9hG4bK{random.getrandbits(48):x}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:peer@127.0.0.1>;tag=p1\r\n"
        f"To: {to}\r\nCall-ID: raw-{random.getrandbits(32):x}\r\nCSeq: 7 {method}\r\n"
        f"Contact: <sip:peer@127.0.0.1>\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_responses_follow_rport_and_unknown_dialogs_get_481(
    endpoint: SipEndpoint, raw: RawPeer
) -> None:
    assert raw.transport is not None
    raw.transport.sendto(request("BYE", to_tag="nosuch"), endpoint.address)
    response = await raw.response()  # reached us although the Via names 10.9.9.9:5070
    assert response.status == 481
    via = response.top_via
    assert via.received == "127.0.0.1" and via.rport == raw.port


async def test_out_of_dialog_requests(endpoint: SipEndpoint, raw: RawPeer) -> None:
    assert raw.transport is not None
    expected = {"OPTIONS": 200, "INVITE": 480, "INFO": 481, "MESSAGE": 405, "FROB": 501}
    for method, status in expected.items():
        raw.transport.sendto(request(method, body=OFFER if method == "INVITE" else b""),
                             endpoint.address)
        response = await raw.response()
        assert (method, response.status) == (method, status)
        if status != 481:
            assert response.to_addr.tag
        if method == "OPTIONS":
            assert "INVITE" in (response.headers.get("Allow") or "")


async def test_incoming_seam_rejects_and_reports_cancel(endpoint: SipEndpoint, raw: RawPeer) -> None:
    assert raw.transport is not None
    seen = []

    def handler(incoming):  # type: ignore[no-untyped-def]
        seen.append(incoming)
        incoming.respond(180)
        incoming.on_cancel = lambda: seen.append("cancelled")

    endpoint.on_incoming(handler)
    invite = request("INVITE", body=OFFER)
    raw.transport.sendto(invite, endpoint.address)
    assert (await raw.response()).status == 100
    ringing = await raw.response()
    assert ringing.status == 180 and ringing.to_addr.tag == seen[0].local_tag
    cancel = invite.replace(b"INVITE sip", b"CANCEL sip").replace(b"7 INVITE", b"7 CANCEL")
    cancel = cancel.split(b"\r\n\r\n")[0].replace(f"Content-Length: {len(OFFER)}".encode(),
                                                  b"Content-Length: 0") + b"\r\n\r\n"
    raw.transport.sendto(cancel, endpoint.address)
    statuses = {(await raw.response()).status, (await raw.response()).status}
    assert statuses == {200, 487}
    assert seen[-1] == "cancelled" and not seen[0].pending
    with pytest.raises(ValueError):
        seen[0].respond(200)


async def test_malformed_input_is_answered_or_dropped_and_the_endpoint_survives(
    endpoint: SipEndpoint, raw: RawPeer, peers: list
) -> None:
    assert raw.transport is not None
    rng = random.Random(1234)
    valid = request("INVITE", body=OFFER)
    junk: list[bytes] = [
        b"", b"\r\n\r\n", b"\x00" * 100, b"SIP/2.0\r\n\r\n", b"INVITE\r\n\r\n",
        valid[: len(valid) // 2], valid[:-20],  # truncated head / body shorter than announced
        valid.replace(b"CSeq: 7 INVITE", b"CSeq: x INVITE"),
        valid.replace(b"Via: SIP/2.0/UDP", b"Via: bogus"),
        valid.replace(b"\r\n\r\n", b"\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 1),
        b"OPTIONS sip:x SIP/2.0\r\n" + b"X: y\r\n" * 300 + b"\r\n",
        bytes(rng.getrandbits(8) for _ in range(60000)),  # oversized noise
        "INVITE sip:é SIP/2.0\r\n\r\n".encode("latin-1"),
    ]
    junk += [bytes(b ^ rng.getrandbits(1) << rng.randrange(8) if rng.random() < 0.02 else b
                   for b in valid) for _ in range(200)]
    junk += [valid[: rng.randrange(len(valid))] for _ in range(100)]
    for i, datagram in enumerate(junk):
        raw.transport.sendto(datagram, endpoint.address)
        if i % 20 == 0:
            await asyncio.sleep(0)  # let the endpoint drain its socket: loopback drops too
    raw.transport.sendto(request("OPTIONS"), endpoint.address)  # a sentinel behind the junk
    statuses = []
    while True:  # answers to broken requests echo their broken headers: read the status only
        answer = await asyncio.wait_for(raw.inbox.get(), WAIT_S)
        statuses.append(int(answer.split(b" ", 2)[1]))
        if answer.startswith(b"SIP/2.0 200 ") and b" OPTIONS\r\n" in answer:
            break
    assert 400 in statuses  # the bad CSeq number is readable enough to answer
    assert endpoint.stats.parse_errors >= 10
    assert endpoint.stats.handler_errors == 0

    # TCP: a garbage stream gets the connection closed, nothing else
    reader, writer = await asyncio.open_connection(*endpoint.address)
    writer.write(b"GARBAGE " * 2000 + b"\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
    writer.close()

    if not needs_sipp.args[0]:
        sipp, target = await start_uas(peers, "uas_answer")
        rec = Recorder()
        call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
        await rec.wait_for("answered")
        call.hangup()
        await rec.wait_for("terminated")
        assert (await sipp.await_result()).ok


async def test_options_ping_between_endpoints(endpoint: SipEndpoint) -> None:
    other = SipEndpoint("127.0.0.1", 0, user_agent="Other")
    await other.start()
    try:
        host, port = other.address
        assert await endpoint.options(SipTarget(host, port)) == 200
        assert await endpoint.options(SipTarget(host, port, "tcp")) == 200
        assert other.stats.messages_in == 2 and other.stats.messages_out == 2
        # a call to an endpoint without an inbound handler is refused with 480
        rec = Recorder()
        target = SipTarget(host, port)
        endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
        await rec.wait_for("terminated")
        assert rec.failed_status() == 480
    finally:
        await other.close()
    assert endpoint.stats.transactions_active <= 2  # only the absorbing UDP timers K/D remain


async def test_options_timeout_and_transport_error(fast_endpoint: SipEndpoint) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with pytest.raises(SipTimeoutError):
            await fast_endpoint.options(SipTarget("127.0.0.1", port))
    assert fast_endpoint.stats.retransmissions >= 3  # timer E fired on the single timer handle
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: the connect is refused
        with pytest.raises(SipTransportError):
            await fast_endpoint.options(SipTarget("127.0.0.1", port, "tcp"))


async def test_invite_without_answer_fails_with_no_response(fast_endpoint: SipEndpoint) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        target = SipTarget("127.0.0.1", silent.getsockname()[1])
        rec = Recorder()
        call = fast_endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
        call.cancel()  # no provisional ever comes: the CANCEL is never sent, timer B decides
        await rec.wait_for("terminated")
    assert rec.names == ["failed", "terminated"] and rec.failed_status() == NO_RESPONSE
    assert fast_endpoint.stats.transactions_active == 0


async def test_close_ends_live_calls(raw: RawPeer) -> None:
    ep = SipEndpoint("127.0.0.1", 0)
    await ep.start()
    target = SipTarget("127.0.0.1", raw.port)
    rec = Recorder()
    call = ep.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await ep.close()
    assert rec.names == ["failed", "terminated"] and rec.failed_status() == 503
    assert call.state == "terminated"
    with pytest.raises(RuntimeError):
        ep.invite(target, **call_uris(target), sdp=OFFER, listener=rec)


async def _invite_to_nobody(transport: str) -> tuple[Recorder, list[tuple[SipTarget, str]]]:
    """An INVITE (default timers: timer B is 32 s) to a loopback port nothing listens on."""
    ep = SipEndpoint("127.0.0.1", 0)
    await ep.start()
    failures: list[tuple[SipTarget, str]] = []
    ep.on_transport_failure = lambda target, reason: failures.append((target, reason))
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = SipTarget("127.0.0.1", port, transport)
    rec = Recorder()
    try:
        ep.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
        await rec.wait_for("terminated", timeout=10.0)
    finally:
        await ep.close()
    assert failures and failures[0][0] == target
    return rec, failures


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_icmp_port_unreachable_fails_the_invite_at_once(loop: str) -> None:
    """Linux reports the ICMP without its address under both loops; the error queue names it."""
    factory = asyncio.new_event_loop
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        rec, failures = runner.run(_invite_to_nobody("udp"))
    assert rec.names == ["failed", "terminated"] and rec.failed_status() == TRANSPORT_FAILED
    assert "Connection refused" in failures[0][1]


async def test_tcp_refused_fails_the_invite_at_once() -> None:
    rec, failures = await _invite_to_nobody("tcp")
    assert rec.names == ["failed", "terminated"] and rec.failed_status() == TRANSPORT_FAILED
    assert "refused" in failures[0][1]


async def test_redirects_are_followed_only_up_to_the_limit(endpoint: SipEndpoint, raw: RawPeer) -> None:
    """A carrier redirecting to itself forever gets the INVITE 1 + limit times, then the call fails."""
    assert raw.transport is not None
    target = SipTarget("127.0.0.1", raw.port)
    rec = Recorder()
    endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec,
                    redirects=RedirectPolicy(2, frozenset({"127.0.0.1"})))
    seqs = []
    while len(seqs) < 3:
        invite = parse_message(await asyncio.wait_for(raw.inbox.get(), WAIT_S))
        if not isinstance(invite, SipRequest) or invite.method != "INVITE":
            continue  # the ACKs of our 302s
        seqs.append(invite.cseq.seq)
        moved = build_response(invite, 302, to_tag="moved",
                               headers=(("Contact", f"<sip:again@127.0.0.1:{raw.port}>"),))
        raw.transport.sendto(moved.to_bytes(), endpoint.address)
    await rec.wait_for("terminated")
    assert seqs == [1, 2, 3] and rec.failed_status() == 302
