"""ExecuteDialplan 7-12 on answered calls against SIPp carriers (PROTOCOL.md §6): REFER transfers
judged by their NOTIFY sipfrags, hold and wire mute as re-INVITE directions, DTMF three ways, and
an AI agent's own transfer."""

from __future__ import annotations

import json
import shutil

import pytest
from websockets.asyncio.server import serve

from tests.conftest import wait_until
from tests.e2e.calls import carrier, tapped_carrier, watched_client
from tests.peers.sipp import parse_message_trace, uas
from trunkline.enums import DialplanAction, EventType
from trunkline.media.dtmf import DtmfDetector, decode_telephone_event
from trunkline.media.g711 import pcmu_decode
from trunkline.sdk import ValidationFailed
from trunkline.sip_engine import TimerConfig

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"
FROM = "+15550001111"
PCMU_SILENCE = 0xFF


def sipp_trace(sipp) -> list:
    """What SIPp has seen and sent so far (its live message trace)."""
    trace = sipp.workdir / "messages.log"
    return parse_message_trace(trace.read_text() if trace.exists() else "")


def sipp_received(sipp, method: str) -> int:
    return sum(1 for m in sipp_trace(sipp) if m.direction == "received" and m.method == method)


def silent(payload: bytes) -> bool:
    return all(byte == PCMU_SILENCE for byte in payload)


async def answered_call(start_gateway, peers, scenario: str, **sipp_options):
    """A parked call answered by a SIPp ``scenario``: (sipp, gateway, client, watch, call_sid)."""
    sipp = await peers(uas(scenario, timeout_s=30, **sipp_options))
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", call_from=FROM, default_app=DialplanAction.PARK)
    await watch.until(call.call_sid, "ANSWERED")
    return sipp, gateway, client, watch, call.call_sid


async def answered_tapped_call(start_gateway, peers, app: DialplanAction):
    """A call running ``app``, answered by a carrier whose RTP passes a tap: (tap, transport, client,
    watch, call_sid)."""
    sipp, tap, transport = await tapped_carrier(peers)
    gateway = await start_gateway(carrier(sipp.port))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=app)
    await watch.until(call.call_sid, "ANSWERED")
    return tap, transport, client, watch, call.call_sid


# --- TRANSFER ------------------------------------------------------------------------------------


async def test_transfer_ends_the_call_completed_when_the_sipfrag_says_200(start_gateway, peers):
    sipp, gateway, client, watch, sid = await answered_call(
        start_gateway, peers, "uas_refer_notify", scenario_vars={"FINAL": "200 OK"})
    assert (await client.transfer(sid, "+15557654321")).status == "ANSWERED"  # the outcome comes later
    hangup = await watch.hangup(sid)
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)
    assert watch.statuses(sid) == ["INITIATED", "ANSWERED", "COMPLETED"]
    assert gateway.calls.find("local", sid, include_ended=True).transferred_to == "+15557654321"
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    refer = result.requests("REFER", "received")[0]
    assert refer.header("Refer-To") == f"<sip:+15557654321@127.0.0.1:{sipp.port};user=phone>"  # as Originate dials
    assert refer.header("Referred-By").startswith(f"<sip:{FROM}@127.0.0.1:")
    flow = [(m.direction, m.method or m.status, m.cseq_method) for m in result.messages]
    notify_oks = [i for i, step in enumerate(flow) if step == ("received", 200, "NOTIFY")]
    assert len(notify_oks) == 2 and flow.index(("received", "BYE", "BYE")) > notify_oks[-1]


@pytest.mark.parametrize("scenario,scenario_vars", [
    ("uas_refer_notify", {"FINAL": "486 Busy Here"}),  # REFER accepted, then a failure sipfrag
    ("uas_refer_answer", {"REFER_STATUS": "603 Decline"}),  # REFER refused
    ("uas_refer_answer", {"REFER_STATUS": "202 Accepted"}),  # accepted, then never a NOTIFY
])
async def test_a_failed_transfer_leaves_the_call_up_in_its_app(start_gateway, peers, scenario, scenario_vars):
    sipp, gateway, client, watch, sid = await answered_call(start_gateway, peers, scenario, scenario_vars=scenario_vars)
    gateway.sip.timers = TimerConfig(t1=0.02, t2=0.16, t4=0.2, timer_d=0.5)  # a silent peer lapses after 64*T1
    await client.transfer(sid, "sip:desk@example.com")
    call = gateway.calls.find("local", sid)
    assert call.transferring_to == "sip:desk@example.com"
    await wait_until(lambda: not call.transferring_to, "the transfer's outcome")
    assert call.transferred_to == "" and watch.statuses(sid) == ["INITIATED", "ANSWERED"]
    assert gateway.calls.bucket_calls("local", "default") == [sid]  # still parked, as before
    await client.terminate(sid)
    assert (await watch.hangup(sid)).status == "COMPLETED"
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    assert result.requests("REFER", "received")[0].header("Refer-To") == "<sip:desk@example.com>"


async def test_verbs_refuse_unknown_unanswered_and_malformed_requests(start_gateway, peers):
    answering = await peers(uas("uas_answer", timeout_s=30))
    ringing = await peers(uas("uas_ring_cancel", timeout_s=30))
    gateway = await start_gateway({"trunks": [{"id": "carrier", "host": "127.0.0.1", "port": answering.port},
                                              {"id": "ringing", "host": "127.0.0.1", "port": ringing.port}]})
    client, watch = await watched_client(gateway)
    with pytest.raises(ValidationFailed, match="no active call 'CAnope'"):
        await client.transfer("CAnope", "+15557654321")
    pending = await client.dial(TO, trunk_id="ringing", call_from=FROM)
    await watch.until(pending.call_sid, "RINGING")
    with pytest.raises(ValidationFailed) as err:
        await client.transfer(pending.call_sid, "+15557654321")
    assert err.value.message == f"TRANSFER needs an answered call; call '{pending.call_sid}' is RINGING"
    with pytest.raises(ValidationFailed, match="HOLD needs an answered call"):
        await client.hold(pending.call_sid)
    call = await client.dial(TO, trunk_id="carrier", call_from=FROM)
    await watch.until(call.call_sid, "ANSWERED")
    for action, args, message in [
        (DialplanAction.TRANSFER, "012345", "TRANSFER to '012345': expected E.164"),
        (DialplanAction.MUTE, "everything", "MUTE app_args 'everything'"),
        (DialplanAction.UNHOLD, "now", "UNHOLD takes no app_args"),
        (DialplanAction.SEND_DTMF, "5:rfc2833", "expected '<digit>:<mode>:<ms>'"),
        (DialplanAction.SEND_DTMF, "X:rfc2833:100", "SEND_DTMF digit 'X'"),
        (DialplanAction.SEND_DTMF, "5:rfc4733:100", "SEND_DTMF mode 'rfc4733'"),
        (DialplanAction.SEND_DTMF, "5:info:20", "SEND_DTMF duration '20'"),
    ]:
        with pytest.raises(ValidationFailed, match=message):
            await client.execute_dialplan(call.call_sid, action, args)
    for sid in (pending.call_sid, call.call_sid):
        await client.terminate(sid)
    assert (await watch.hangup(pending.call_sid)).status == "CANCELED"
    assert (await watch.hangup(call.call_sid)).status == "COMPLETED"  # the refusals did nothing to it
    for sipp in (answering, ringing):
        result = await sipp.await_result(timeout=10)
        assert result.ok and not result.requests("REFER"), result.describe()


class TransferringBot:
    """A Twilio Media Streams bot that, once the stream starts, hands the caller to ``to``."""

    def __init__(self, to: str) -> None:
        self.to = to
        self.received: list[str] = []

    async def handler(self, ws) -> None:
        async for raw in ws:
            message = json.loads(raw)
            self.received.append(message["event"])
            if message["event"] == "start":
                await ws.send(json.dumps({"event": "transfer", "streamSid": message["streamSid"],
                                          "transfer": {"to": self.to}}))


async def test_the_agents_transfer_event_sends_refer_and_a_200_sipfrag_ends_the_call(start_gateway, peers):
    sipp = await peers(uas("uas_refer_notify", timeout_s=30, scenario_vars={"FINAL": "200 OK"}))
    bot = TransferringBot("sip:sales-desk@pbx.example.com")
    async with serve(bot.handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/media"
        gateway = await start_gateway(carrier(sipp.port))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.AI_BIDIRECTIONAL_STREAM,
                                 ai_websocket_url=url)
        hangup = await watch.hangup(call.call_sid)
        await wait_until(lambda: "stop" in bot.received, "the agent's stop")
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)
    assert gateway.calls.find("local", call.call_sid, include_ended=True).transferred_to == bot.to
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    assert result.requests("REFER", "received")[0].header("Refer-To") == f"<{bot.to}>"


# --- HOLD / UNHOLD and MUTE / UNMUTE -------------------------------------------------------------


async def test_hold_and_unhold_re_invite_and_report_hold_and_resume(start_gateway, peers):
    directions = {"FIRST": "sendonly", "FIRST_ANSWER": "recvonly", "SECOND": "sendrecv", "SECOND_ANSWER": "sendrecv"}
    sipp, gateway, client, watch, sid = await answered_call(
        start_gateway, peers, "uas_reinvite_directions", scenario_vars=directions)
    await client.hold(sid)
    held = await watch.first(sid, lambda e: e.event_type == EventType.CHANNEL_HOLD)
    await client.unhold(sid)
    resumed = await watch.first(sid, lambda e: e.event_type == EventType.CHANNEL_RESUME)
    assert held.status == resumed.status == "ANSWERED"
    await client.terminate(sid)
    await watch.hangup(sid)
    assert [e.event_type for e in watch.events[sid]] == [
        EventType.CHANNEL_CREATE, EventType.CHANNEL_ANSWER, EventType.CHANNEL_HOLD, EventType.CHANNEL_RESUME,
        EventType.CHANNEL_HANGUP_COMPLETE]
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()  # the re-INVITEs offered a=sendonly, then a=sendrecv


async def test_holding_one_side_of_a_bridge_plays_music_on_hold_to_the_other(start_gateway, peers):
    directions = {"FIRST": "sendonly", "FIRST_ANSWER": "recvonly", "SECOND": "sendrecv", "SECOND_ANSWER": "sendrecv"}
    held_side = await peers(uas("uas_reinvite_directions", timeout_s=30, scenario_vars=directions))
    other_side, tap, transport = await tapped_carrier(peers)
    tap.pass_echo = False  # the other party says nothing; what it hears is what the tap records
    gateway = await start_gateway({"trunks": [{"id": "carrier", "host": "127.0.0.1", "port": held_side.port},
                                              {"id": "other", "host": "127.0.0.1", "port": other_side.port}]})
    client, watch = await watched_client(gateway)
    other = await client.dial(TO, trunk_id="other", default_app=DialplanAction.PARK)
    await watch.until(other.call_sid, "ANSWERED")
    held = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.UNPARK_AND_BRIDGE,
                             default_app_args=other.call_sid)
    await watch.until(held.call_sid, "ANSWERED")
    await wait_until(lambda: gateway.calls.find("local", held.call_sid).partner is not None, "the bridge")
    bridged_from = len(tap.sent)
    await wait_until(lambda: len(tap.sent) >= bridged_from + 25, "bridged frames")
    await client.hold(held.call_sid)
    await watch.first(held.call_sid, lambda e: e.event_type == EventType.CHANNEL_HOLD)
    on_hold_from = len(tap.sent) + 2
    await wait_until(lambda: len(tap.sent) >= on_hold_from + 50, "frames on hold")
    await client.unhold(held.call_sid)
    await watch.first(held.call_sid, lambda e: e.event_type == EventType.CHANNEL_RESUME)
    resumed_from = len(tap.sent) + 2
    await wait_until(lambda: len(tap.sent) >= resumed_from + 25, "frames after resume")
    await client.terminate(held.call_sid)
    await watch.hangup(held.call_sid)
    await client.terminate(other.call_sid)
    await watch.hangup(other.call_sid)
    transport.close()
    payloads = [payload for _, payload in tap.sent]
    # the held side sends no RTP at all, so the bridge carries silence until the hold music starts
    assert all(silent(p) for p in payloads[bridged_from:bridged_from + 25])
    assert sum(not silent(p) for p in payloads[on_hold_from:on_hold_from + 50]) > 40
    assert all(silent(p) for p in payloads[resumed_from:resumed_from + 25])
    assert (await held_side.await_result(timeout=10)).ok


async def test_a_refused_hold_changes_nothing_and_a_later_mute_offers_only_itself(start_gateway, peers):
    sipp, gateway, client, watch, sid = await answered_call(
        start_gateway, peers, "uas_reinvite_refused",
        scenario_vars={"FIRST": "sendonly", "SECOND": "recvonly", "SECOND_ANSWER": "sendonly"})
    await client.hold(sid)
    await wait_until(lambda: sipp_received(sipp, "ACK") == 2, "the refused hold")  # the 488's ACK
    await client.mute(sid, wire=True)  # not "inactive": the refused hold is not pending any more
    await wait_until(lambda: sipp_received(sipp, "ACK") == 3, "the mute re-INVITE")
    await client.terminate(sid)
    await watch.hangup(sid)
    assert [e.event_type for e in watch.events[sid]] == [
        EventType.CHANNEL_CREATE, EventType.CHANNEL_ANSWER, EventType.CHANNEL_HANGUP_COMPLETE]
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()


async def test_terminate_sends_bye_at_once_while_a_re_invite_is_unanswered(start_gateway, peers):
    """RFC 3261 §15: a BYE does not wait for a pending re-INVITE, and the call ends as it is sent. The
    peer answers neither the hold nor the BYE, so waiting for either would take 32 s (64*T1)."""
    sipp, gateway, client, watch, sid = await answered_call(start_gateway, peers, "uas_reinvite_unanswered")
    await client.hold(sid)
    await wait_until(lambda: sipp_received(sipp, "INVITE") == 2, "the hold re-INVITE")
    await client.terminate(sid)
    hangup = await watch.hangup(sid, timeout=10)
    assert (hangup.status, hangup.q850_cause) == ("COMPLETED", 16)
    assert [e.event_type for e in watch.events[sid]] == [
        EventType.CHANNEL_CREATE, EventType.CHANNEL_ANSWER, EventType.CHANNEL_HANGUP_COMPLETE]
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()  # it got the BYE, then the ACK of its 487 to the re-INVITE


async def test_wire_mute_re_invites_recvonly_and_unmute_sendrecv(start_gateway, peers):
    directions = {"FIRST": "recvonly", "FIRST_ANSWER": "sendonly", "SECOND": "sendrecv", "SECOND_ANSWER": "sendrecv"}
    sipp, gateway, client, watch, sid = await answered_call(
        start_gateway, peers, "uas_reinvite_directions", scenario_vars=directions)
    await client.mute(sid, wire=True)
    await wait_until(lambda: sipp_received(sipp, "ACK") == 2, "the mute re-INVITE")  # ACKs: the call's, then each 200's
    await client.unmute(sid, wire=True)
    await wait_until(lambda: sipp_received(sipp, "ACK") == 3, "the unmute re-INVITE")
    await client.terminate(sid)
    await watch.hangup(sid)
    assert [e.event_type for e in watch.events[sid]][2:] == [EventType.CHANNEL_HANGUP_COMPLETE]  # mute is not hold
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()


async def test_mute_sends_silence_and_unmute_the_app_audio_again(start_gateway, peers):
    tap, transport, client, watch, sid = await answered_tapped_call(start_gateway, peers, DialplanAction.MUSIC_ON_HOLD)
    await wait_until(lambda: len(tap.sent) >= 25, "hold music")
    await client.mute(sid)
    muted_from = len(tap.sent) + 2  # a frame or two may still be on its way
    await wait_until(lambda: len(tap.sent) >= muted_from + 50, "muted frames")
    await client.unmute(sid)
    unmuted_from = len(tap.sent) + 2
    await wait_until(lambda: len(tap.sent) >= unmuted_from + 50, "unmuted frames")
    await client.terminate(sid)
    await watch.hangup(sid)
    transport.close()
    payloads = [payload for _, payload in tap.sent]
    assert not all(silent(p) for p in payloads[:25])
    assert all(silent(p) for p in payloads[muted_from:muted_from + 50])  # RTP keeps flowing, silent
    assert not all(silent(p) for p in payloads[unmuted_from:unmuted_from + 50])


# --- SEND_DTMF -----------------------------------------------------------------------------------


async def test_send_dtmf_as_sip_info(start_gateway, peers):
    sipp, gateway, client, watch, sid = await answered_call(start_gateway, peers, "uas_answer_info")
    await client.send_dtmf(sid, "5", mode="info", duration_ms=160)
    await wait_until(lambda: any(m.direction == "sent" and m.cseq_method == "INFO" for m in sipp_trace(sipp)),
                     "the INFO's answer")
    await client.terminate(sid)
    await watch.hangup(sid)
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    info = result.requests("INFO", "received")[0]
    assert info.header("Content-Type") == "application/dtmf-relay"
    assert info.body.splitlines() == ["Signal=5", "Duration=160"]


async def test_send_dtmf_as_rfc4733_events_and_as_inband_tones(start_gateway, peers):
    tap, transport, client, watch, sid = await answered_tapped_call(start_gateway, peers, DialplanAction.PARK)
    await client.send_dtmf(sid, "5", mode="rfc2833", duration_ms=200)
    await wait_until(lambda: any(decode_telephone_event(p).end for p in tap.events), "the key's end packet")
    tones_from = len(tap.sent)
    await client.send_dtmf(sid, "9", mode="inband", duration_ms=400)
    await wait_until(lambda: len(tap.sent) >= tones_from + 40, "in-band frames")
    await client.terminate(sid)
    await watch.hangup(sid)
    transport.close()
    events = [decode_telephone_event(p) for p in tap.events]
    assert {e.digit for e in events} == {"5"}
    assert max(e.duration for e in events) == 200 * 8  # samples at 8 kHz
    detector = DtmfDetector()
    heard = [detector.classify(pcmu_decode(payload)) for _, payload in tap.sent[tones_from:]]
    assert set(heard) == {"9", None} and heard.count("9") >= 400 // 20 - 2  # edge frames may straddle
