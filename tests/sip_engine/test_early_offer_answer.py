"""Early media, reliable provisionals and the rest of offer/answer, against SIPp carriers.

RFC 3262 (100rel/PRACK), RFC 3261 §8.1.3.5 (a 2xx requiring what we lack), RFC 3264 and
RFC 3311 (an offer asked for by a re-INVITE without SDP, an UPDATE without SDP).
"""

from __future__ import annotations

import asyncio

from tests.peers.sipp import free_udp_port, parse_message_trace
from trunkline.sip_engine import SipEndpoint

from .conftest import OFFER, SIPP_TIMEOUT_S, Recorder, call_uris, needs_sipp, start_uas

pytestmark = needs_sipp


async def test_reliable_183_is_pracked_and_reported_once(endpoint: SipEndpoint, peers: list) -> None:
    port = str(free_udp_port())
    sipp, target = await start_uas(peers, "uas_early_100rel", pause_ms=300,
                                   scenario_vars={"RTP_PORT": port, "ANSWER_PORT": port})
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("answered")
    call.hangup()
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()  # Supported: 100rel offered, PRACK with the right RAck
    (prack,) = result.requests("PRACK", "received")
    invite = result.requests("INVITE", "received")[0]
    assert prack.header("Call-ID") == invite.header("Call-ID")
    invite_seq = int(invite.header("CSeq").split()[0])
    assert prack.header("RAck") == f"1 {invite_seq} INVITE"
    assert prack.header("CSeq") == f"{invite_seq + 1} PRACK"
    assert rec.names == ["provisional", "answered", "terminated"]
    assert rec.events[0][1] == 183 and f"m=audio {port} ".encode() in rec.events[0][2]


async def test_2xx_requiring_an_unknown_extension_gets_ack_then_bye(endpoint: SipEndpoint,
                                                                    peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_answer_require",
                                   scenario_vars={"REQUIRE": "timer, x-teleport"})
    rec = Recorder()
    endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()  # ACKed, then BYE
    assert rec.names == ["failed", "terminated"] and rec.failed_status() == 420


async def test_delayed_offer_reinvite_gets_an_offer_and_its_ack_answer_and_update_no_sdp(
        endpoint: SipEndpoint, peers: list) -> None:
    """A re-INVITE without SDP is answered with the listener's offer and the ACK's SDP reaches the
    listener as the answer; an UPDATE without SDP is a refresh: 200 without SDP, listener not asked."""
    offer = OFFER.replace(b"RTP/AVP 0 101", b"RTP/AVP 0 8 101").replace(
        b"a=rtpmap:0 PCMU/8000\r\n", b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
    new_port = str(free_udp_port())
    sipp, target = await start_uas(peers, "uas_reinvite_delayed",
                                   scenario_vars={"RTP_PORT": str(free_udp_port()), "NEW_PORT": new_port})
    rec = Recorder(reinvite_answer=(200, offer))
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("ack_answer")
    trace = sipp.workdir / "messages.log"
    while not any(m.status == 200 and m.cseq_method == "UPDATE"
                  for m in parse_message_trace(trace.read_text())):
        assert sipp.is_running(), sipp.wait().describe()
        await asyncio.sleep(0.02)
    call.hangup()
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()
    assert rec.reinvite_offers == [None]
    assert rec.ack_answers == [rec.ack_answers[0]] and f"m=audio {new_port} ".encode() in rec.ack_answers[0]
    (update_ok,) = result.responses(200, direction="received", cseq_method="UPDATE")
    assert update_ok.body == "" and update_ok.header("Content-Type") is None
