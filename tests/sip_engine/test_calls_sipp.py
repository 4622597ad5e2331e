"""Outgoing calls against SIPp carriers on loopback: the flows a trunk puts Trunkline through.

SIPp's verdict (its exit code and per-call success) proves the wire side; the recorder proves
what the call layer would see.
"""

from __future__ import annotations

import asyncio

from tests.peers.sipp import DEFAULT_KEYS, parse_message_trace, proxy_auth_uas
from trunkline.sip_engine import Credentials, SipEndpoint

from .conftest import OFFER, SIPP_TIMEOUT_S, WAIT_S, Recorder, call_uris, needs_sipp, start_uas

pytestmark = needs_sipp


async def _answered_then_bye(endpoint: SipEndpoint, peers: list, scenario: str, *,
                             tcp: bool = False, **options: object) -> None:
    sipp, target = await start_uas(peers, scenario, tcp=tcp, **options)
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    assert call.state == "calling"
    answered = await rec.wait_for("answered")
    assert b"m=audio" in answered[1]
    assert call.state == "confirmed" and call.final_status == 200
    assert call.remote_tag and call.remote_target and "carrier@" in call.remote_target
    call.hangup()
    call.hangup()  # idempotent
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()
    assert rec.names[-1] == "terminated" and rec.names.count("terminated") == 1
    assert call.state == "terminated"
    assert len(result.requests("BYE", "received")) == 1


async def test_answered_call_then_our_bye(endpoint: SipEndpoint, peers: list) -> None:
    await _answered_then_bye(endpoint, peers, "uas_answer")
    assert endpoint.stats.parse_errors == 0


async def test_answered_call_over_tcp(endpoint: SipEndpoint, peers: list) -> None:
    await _answered_then_bye(endpoint, peers, "uas_answer", tcp=True)


async def test_ringing_then_answer(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_ring_answer", pause_ms=200)
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("provisional")
    await rec.wait_for("answered")
    assert rec.names[:2] == ["provisional", "answered"]
    assert rec.events[0][1] == 180
    call.hangup()
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()


async def _rejected(endpoint: SipEndpoint, peers: list, scenario: str) -> Recorder:
    sipp, target = await start_uas(peers, scenario)
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()  # the UAS got its ACK
    assert rec.names == ["failed", "terminated"]
    assert call.final_status == rec.failed_status()
    return rec


async def test_busy_is_reported(endpoint: SipEndpoint, peers: list) -> None:
    rec = await _rejected(endpoint, peers, "uas_busy")
    assert rec.failed_status() == 486


async def test_unavailable_is_reported(endpoint: SipEndpoint, peers: list) -> None:
    rec = await _rejected(endpoint, peers, "uas_unavailable")
    assert rec.failed_status() == 503
    assert isinstance(rec.events[0][2], dict) and "Call-ID" in rec.events[0][2]


async def test_cancel_while_ringing(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_ring_cancel")
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("provisional")
    call.cancel()
    assert call.state == "terminating"
    await rec.wait_for("terminated")
    assert rec.failed_status() == 487
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()
    cancels = result.requests("CANCEL", "received")
    invite = result.requests("INVITE", "received")[0]
    assert len(cancels) == 1
    assert cancels[0].header("Via") == invite.header("Via")  # same branch (§9.1)
    assert cancels[0].header("CSeq").split()[0] == invite.header("CSeq").split()[0]


async def test_hangup_before_any_response_cancels_once_provisional_arrives(
    endpoint: SipEndpoint, peers: list
) -> None:
    sipp, target = await start_uas(peers, "uas_slow_ring_cancel", pause_ms=300)
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    call.hangup()  # nothing received yet: the CANCEL must wait for a provisional (§9.1)
    await rec.wait_for("terminated")
    assert rec.failed_status() == 487
    assert "provisional" not in rec.names  # ringing after a cancel is not news
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()
    flow = [m.method or m.status for m in result.messages]
    assert flow.index("CANCEL") > flow.index(180)


async def test_digest_401_with_right_password(endpoint: SipEndpoint, peers: list) -> None:
    creds = Credentials(DEFAULT_KEYS["auth_user"], DEFAULT_KEYS["auth_pass"])
    sipp, target = await start_uas(peers, "uas_auth_401")
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec,
                           credentials=creds)
    await rec.wait_for("answered")
    call.hangup()
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok and result.successful == 1, result.describe()
    invites = result.requests("INVITE", "received")
    assert len(invites) == 2
    assert invites[0].header("Call-ID") == invites[1].header("Call-ID")
    assert invites[0].header("From") == invites[1].header("From")
    assert int(invites[1].header("CSeq").split()[0]) == int(invites[0].header("CSeq").split()[0]) + 1
    assert (invites[1].header("Authorization") or "").startswith("Digest ")


async def test_digest_401_with_wrong_password_fails_without_looping(
    endpoint: SipEndpoint, peers: list
) -> None:
    creds = Credentials(DEFAULT_KEYS["auth_user"], "wrong")
    sipp, target = await start_uas(peers, "uas_auth_401")
    rec = Recorder()
    endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec, credentials=creds)
    await rec.wait_for("terminated")
    assert rec.failed_status() == 403
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.failed == 1  # SIPp saw wrong credentials on the wire
    assert len(result.requests("INVITE", "received")) == 2


async def test_digest_407_with_right_and_wrong_password(endpoint: SipEndpoint, peers: list) -> None:
    for password, ok in ((DEFAULT_KEYS["auth_pass"], True), ("wrong", False)):
        sipp = proxy_auth_uas(user=DEFAULT_KEYS["auth_user"], password=DEFAULT_KEYS["auth_pass"],
                              timeout_s=SIPP_TIMEOUT_S)  # accepts sip:service@127.0.0.1:<port>
        sipp, target = await start_uas(peers, "uas_auth_407", sipp=sipp)
        rec = Recorder()
        call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec,
                               credentials=Credentials(DEFAULT_KEYS["auth_user"], password))
        if ok:
            await rec.wait_for("answered")
            call.hangup()
        await rec.wait_for("terminated")
        result = await sipp.await_result(SIPP_TIMEOUT_S)
        invites = result.requests("INVITE", "received")
        assert len(invites) == 2
        if ok:
            assert result.ok and result.successful == 1, result.describe()
            assert (invites[1].header("Proxy-Authorization") or "").startswith("Digest ")
        else:
            assert rec.failed_status() == 403


async def test_hold_reinvite_from_carrier_is_answered(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_reinvite_hold")
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("answered")
    await rec.wait_for("reinvite")
    assert rec.reinvite_offers[0] is not None and b"a=sendonly" in rec.reinvite_offers[0]
    # SIPp must have ACKed our 200 before it can take the BYE: follow its live message trace
    trace = sipp.workdir / "messages.log"
    while len([m for m in parse_message_trace(trace.read_text())
               if m.method == "ACK" and m.direction == "sent"]) < 1:
        assert sipp.is_running()
        await asyncio.sleep(0.02)
    call.hangup()
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok and result.successful == 1, result.describe()
    ok = [m for m in result.responses(200, direction="received", cseq_method="INVITE")]
    assert ok and "a=recvonly" in ok[0].body


async def test_carrier_hangs_up(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_answer_bye", pause_ms=100)
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("terminated")
    assert rec.names == ["answered", "remote_bye", "terminated"]
    assert call.state == "terminated"
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()
    assert result.responses(200, direction="received", cseq_method="BYE")


async def test_our_info_and_hold_reinvite(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_answer_info_reinvite")
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("answered")
    status = await call.request("INFO", "application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")
    assert status == 200
    status, answer = await call.reinvite(OFFER.replace(b"a=sendrecv", b"a=sendonly"))
    assert status == 200 and answer is not None and b"a=recvonly" in answer
    assert call.state == "confirmed"
    call.hangup()
    await rec.wait_for("terminated")
    assert await call.request("INFO", "application/dtmf-relay", b"") == 481  # no dialog now
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok and result.successful == 1, result.describe()
    invites = result.requests("INVITE", "received")
    assert invites[1].header("To") != invites[0].header("To")  # in-dialog: carries the To tag
    assert int(invites[1].header("CSeq").split()[0]) > int(invites[0].header("CSeq").split()[0])


async def test_bye_ends_the_call_at_once_while_our_re_invite_is_unanswered(endpoint: SipEndpoint, peers: list) -> None:
    """RFC 3261 §15: the BYE does not wait for the pending re-INVITE, and the call is over as the BYE
    leaves. This carrier answers neither, so waiting for either would take 64*T1 (32 s)."""
    sipp, target = await start_uas(peers, "uas_reinvite_unanswered")
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("answered")
    hold = asyncio.ensure_future(call.reinvite(OFFER.replace(b"a=sendrecv", b"a=sendonly")))
    trace = sipp.workdir / "messages.log"
    while sum(m.method == "INVITE" and m.direction == "received" for m in parse_message_trace(trace.read_text())) < 2:
        assert sipp.is_running()
        await asyncio.sleep(0.02)
    call.hangup()
    await rec.wait_for("terminated")
    assert rec.names == ["answered", "terminated"]
    assert await asyncio.wait_for(hold, WAIT_S) == (487, None)  # the carrier ended it after the BYE
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok and result.successful == 1, result.describe()  # the BYE came; the 487 was ACKed
    assert not result.responses(direction="sent", cseq_method="BYE")


async def test_refer_and_the_notifies_that_report_it(endpoint: SipEndpoint, peers: list) -> None:
    sipp, target = await start_uas(peers, "uas_refer_notify", scenario_vars={"FINAL": "200 OK"})
    rec = Recorder()
    call = endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("answered")
    refer_to = "<sip:+15557654321@127.0.0.1:5070;user=phone>"
    status = await call.request("REFER", headers=[("Refer-To", refer_to), ("Referred-By", "<sip:trunkline@127.0.0.1>")])
    assert status == 202
    await rec.wait_for("notify", count=2)
    notifies = [e[1:] for e in rec.events if e[0] == "notify"]
    assert [(event, state) for event, state, *_ in notifies] == [
        ("refer", "active;expires=60"), ("refer", "terminated;reason=noresource")]
    assert [body.strip() for *_, body in notifies] == [b"SIP/2.0 100 Trying", b"SIP/2.0 200 OK"]
    assert {content_type for _, _, content_type, _ in notifies} == {"message/sipfrag;version=2.0"}
    call.hangup()
    await rec.wait_for("terminated")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok and result.successful == 1, result.describe()
    assert result.requests("REFER", "received")[0].header("Refer-To") == refer_to
    assert len(result.responses(200, direction="received", cseq_method="NOTIFY")) >= 2


async def test_session_timer_422_is_retried_and_the_peers_refresh_answered(
        endpoint: SipEndpoint, peers: list) -> None:
    """RFC 4028: a 422 gets the INVITE again with its Min-SE; an UPDATE refreshing the session gets
    a 200 saying who refreshes, with Require: timer when it is the peer."""
    sipp, target = await start_uas(peers, "uas_session_422_update")
    rec = Recorder()
    endpoint.invite(target, **call_uris(target), sdp=OFFER, listener=rec)
    await rec.wait_for("remote_bye")
    result = await sipp.await_result(SIPP_TIMEOUT_S)
    assert result.ok, result.describe()
    invites = result.requests("INVITE", "received")
    assert [m.header("Session-Expires") for m in invites] == ["1800", "1900"]
    assert invites[0].header("Supported") == "100rel, timer" and invites[0].header("Min-SE") == "90"
    (update_ok,) = result.responses(200, direction="received", cseq_method="UPDATE")
    assert update_ok.header("Session-Expires") == "1900;refresher=uac" and update_ok.header("Require") == "timer"
