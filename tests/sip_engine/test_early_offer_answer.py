"""Early media, reliable provisionals and the rest of offer/answer, against SIPp carriers.

RFC 3262 (100rel/PRACK), RFC 3261 §8.1.3.5 (a 2xx requiring what we lack), RFC 3264 and
RFC 3311 (an offer asked for by a re-INVITE without SDP, an UPDATE without SDP).
"""

from __future__ import annotations

from tests.peers.sipp import free_udp_port
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

