"""The call domain: Originate rules, the call lifecycle and its events, dialplan apps, buckets."""

from __future__ import annotations

import pytest

from tests.calls.fakes import FakeTelephony, ManualTimers
from trunkline.calls.errors import CallError
from trunkline.calls.events import EventHub
from trunkline.calls.ports import Announcement, MusicOnHold, Playback, Silence
from trunkline.calls import service as service_module
from trunkline.calls.service import CallService, EndedCall
from trunkline.calls.ports import AgentSpec
from trunkline.config import AgentConfig, TrunkConfig
from trunkline.enums import DialplanAction, ErrorCode, EventType

TRUNKS = (
    TrunkConfig(id="carrier", tenant="t", caller_ids=("+15550001111",), max_concurrent=3, ring_timeout_s=30, max_duration_s=600),
    TrunkConfig(id="theirs", tenant="other"),
)


class Recorder:
    def __init__(self) -> None:
        self.got = []

    def deliver(self, event) -> bool:
        self.got.append(event)
        return True


@pytest.fixture
def world():
    telephony, timers, hub, rec = FakeTelephony(), ManualTimers(), EventHub(), Recorder()
    hub.subscribe("t", "", rec)
    service = CallService(TRUNKS, telephony, hub, timers, clock=lambda: 1000.0, announcements={"vip": "/a.wav"},
                          agents=(AgentConfig("sales", "wss://bots.example/sales", "pcm16", 16000),))
    return service, telephony, timers, rec


def dial(service, **kw):
    fields = {"to": "+15551234567", "call_from": "+15550001111", "default_app": DialplanAction.PARK} | kw
    return service.originate("t", fields.pop("trunk_id", "carrier"), fields.pop("call_sid", ""), **fields)


@pytest.mark.parametrize(
    "kw,code",
    [
        ({"trunk_id": "nope"}, ErrorCode.ERR_INVALID_TRUNK),
        ({"trunk_id": "theirs"}, ErrorCode.ERR_INVALID_TRUNK),
        ({"to": "5551234"}, ErrorCode.ERR_INVALID_DESTINATION),
        ({"to": "+123"}, ErrorCode.ERR_INVALID_DESTINATION),
        ({"to": "http://x"}, ErrorCode.ERR_INVALID_DESTINATION),
        ({"call_from": "+19999999999"}, ErrorCode.ERR_VALIDATION_FAILED),
        ({"default_app": DialplanAction.TRANSFER}, ErrorCode.ERR_VALIDATION_FAILED),
        ({"default_app": DialplanAction.PLAYBACK}, ErrorCode.ERR_VALIDATION_FAILED),
        ({"max_duration_ms": -1}, ErrorCode.ERR_VALIDATION_FAILED),
    ],
)
def test_originate_refusals(world, kw, code):
    service, telephony, *_ = world
    with pytest.raises(CallError) as err:
        dial(service, **kw)
    assert err.value.code == code
    assert telephony.legs == []


def test_sip_uri_destinations_are_accepted(world):
    service, telephony, *_ = world
    dial(service, to="sip:alice@example.com;transport=tcp")
    assert telephony.legs[0].to == "sip:alice@example.com;transport=tcp"


def test_call_sid_is_an_idempotency_key(world):
    service, telephony, *_ = world
    first = dial(service, call_sid="abc")
    assert dial(service, call_sid="abc") is first
    assert len(telephony.legs) == 1


def test_an_ended_call_sid_answers_with_its_record_until_it_is_too_old_or_too_many_ended_since(monkeypatch):
    now = [1000.0]
    telephony = FakeTelephony()
    service = CallService(TRUNKS, telephony, EventHub(), ManualTimers(), clock=lambda: now[0])
    monkeypatch.setattr(service_module, "ENDED_CALLS_KEPT", 2)
    for sid in ("a", "b", "c"):
        dial(service, call_sid=sid)
        telephony.legs[-1].fail(486)
    assert service.find("t", "a", include_ended=True) is None  # the oldest of three, with room for two
    repeat = dial(service, call_sid="c")
    assert (repeat.sid, repeat.status, repeat.q850_cause) == ("c", "BUSY", 17)
    assert len(telephony.legs) == 3  # no second call placed
    now[0] += service_module.ENDED_CALL_MAX_AGE_S + 1
    assert service.find("t", "c", include_ended=True) is None
    dial(service, call_sid="c")  # an hour on, the sid is free again
    assert len(telephony.legs) == 4


def test_trunk_max_concurrent_is_enforced_and_released(world):
    service, telephony, *_ = world
    for _ in range(3):
        dial(service)
    with pytest.raises(CallError) as err:
        dial(service)
    assert err.value.code == ErrorCode.ERR_RATE_LIMITED
    telephony.legs[0].fail(503)
    dial(service)


def test_answered_call_events_in_order_with_hangup_statistics(world):
    service, telephony, timers, rec = world
    call = dial(service)
    leg = telephony.legs[0]
    leg.ring()
    leg.ring()  # 180 then 183: one RINGING
    leg.answer()
    leg.remote_bye()
    assert [(e.event_type, e.status) for e in rec.got] == [
        (EventType.CHANNEL_CREATE, "INITIATED"), (EventType.CHANNEL_CREATE, "RINGING"),
        (EventType.CHANNEL_ANSWER, "ANSWERED"), (EventType.CHANNEL_HANGUP_COMPLETE, "COMPLETED")]
    hangup = rec.got[-1]
    assert (hangup.q850_cause, hangup.codec, hangup.packets_sent, hangup.packets_lost) == (16, "PCMU", 50, 1)
    assert hangup.trunk_id == "carrier" and hangup.call_sid == call.sid
    assert service.find("t", call.sid) is None
    record = service.find("t", call.sid, include_ended=True)
    assert isinstance(record, EndedCall)  # what is kept of it: not the call, its leg or its media
    assert (record.status, record.q850_cause, record.packets_sent, record.end_ms) == ("COMPLETED", 16, 50, 1_000_000)


@pytest.mark.parametrize("sip,status,cause", [(486, "BUSY", 17), (503, "FAILED", 41), (603, "REJECTED", 21), (404, "FAILED", 1)])
def test_failures_map_to_status_and_q850(world, sip, status, cause):
    service, telephony, _, rec = world
    dial(service)
    telephony.legs[0].fail(sip)
    assert (rec.got[-1].status, rec.got[-1].q850_cause) == (status, cause)


def test_terminate_while_ringing_cancels(world):
    service, telephony, _, rec = world
    call = dial(service)
    telephony.legs[0].ring()
    service.terminate("t", call.sid)
    assert telephony.legs[0].hangups == 1
    telephony.legs[0].fail(487)
    assert rec.got[-1].status == "CANCELED"


def test_ring_timeout_is_no_answer_and_max_duration_is_timeout(world):
    service, telephony, timers, rec = world
    dial(service)
    timers.fire(30)
    assert telephony.legs[0].hangups == 1
    telephony.legs[0].fail(487)
    assert (rec.got[-1].status, rec.got[-1].q850_cause) == ("NO_ANSWER", 19)

    dial(service, max_duration_ms=2500)
    leg = telephony.legs[1]
    leg.answer()
    timers.fire(2.5)
    assert leg.hangups == 1
    leg.close()
    assert rec.got[-1].status == "TIMEOUT"


def test_trunk_default_max_duration_applies_when_zero(world):
    service, telephony, timers, rec = world
    dial(service)
    telephony.legs[0].answer()
    timers.fire(600.0)
    assert telephony.legs[0].hangups == 1


def test_other_tenants_calls_look_unknown(world):
    service, *_ = world
    call = dial(service)
    with pytest.raises(CallError) as err:
        service.terminate("other", call.sid)
    assert err.value.code == ErrorCode.ERR_VALIDATION_FAILED


def test_park_buckets_and_bucket_actions(world):
    service, telephony, *_ = world
    a = dial(service, default_app_args="vip")
    dial(service)
    for leg in telephony.legs:
        leg.answer()
    assert service.buckets("t") == [("default", 1), ("vip", 1)]
    assert service.bucket_calls("t", "vip") == [a.sid]
    assert service.buckets("other") == []
    assert service.bucket_action("t", "vip", 2) == 1
    assert telephony.legs[0].playing[-1] == Announcement("/a.wav")
    a.leg_playback_finished()
    assert telephony.legs[0].playing[-1] == Silence() and service.bucket_calls("t", "vip") == [a.sid]
    assert service.bucket_action("t", "vip", 1) == 0  # no AI stream or agent configured: stays parked
    assert service.bucket_action("t", "default", 0) == 1
    assert telephony.legs[1].hangups == 1
    with pytest.raises(CallError):
        service.bucket_action("t", "default", 7)


def test_bucket_action_1_bridges_each_parked_call_to_its_ai_stream_and_leaves_the_rest(world):
    service, telephony, *_ = world
    by_url = dial(service, default_app_args="q", ai_websocket_url="ws://bot.example/a")
    by_key = dial(service, default_app_args="q", agent_config_key="sales")
    plain = dial(service, default_app_args="q")
    for leg in telephony.legs:
        leg.answer()
    assert service.bucket_action("t", "q", 1) == 2
    assert service.bucket_calls("t", "q") == [plain.sid]
    url_spec, info = telephony.legs[0].agent
    assert (url_spec.kind, url_spec.url, info.call_sid) == ("websocket", "ws://bot.example/a", by_url.sid)
    key_spec, _ = telephony.legs[1].agent
    assert (key_spec.url, key_spec.dialect, key_spec.sample_rate) == ("wss://bots.example/sales", "pcm16", 16000)
    assert telephony.legs[2].agent is None
    assert by_key.app.action is DialplanAction.AI_BIDIRECTIONAL_STREAM
    with pytest.raises(CallError) as err:
        dial(service, agent_config_key="nobody")
    assert err.value.code == ErrorCode.ERR_VALIDATION_FAILED


def test_unpark_and_bridge_then_the_survivor_returns_to_park(world):
    service, telephony, *_ = world
    parked = dial(service, default_app_args="vip")
    caller = dial(service, default_app=DialplanAction.UNPARK_AND_BRIDGE, default_app_args=parked.sid)
    telephony.legs[0].answer()
    telephony.legs[1].answer()
    assert telephony.legs[1].bridged_to is telephony.legs[0]
    assert service.buckets("t") == []
    telephony.legs[1].remote_bye()
    assert telephony.legs[0].bridged_to is None
    assert service.bucket_calls("t", "vip") == [parked.sid]
    assert caller.final_status == "COMPLETED"


def test_unpark_and_bridge_to_nothing_parks_instead(world):
    service, telephony, *_ = world
    call = dial(service, default_app=DialplanAction.UNPARK_AND_BRIDGE, default_app_args="ghost")
    telephony.legs[0].answer()
    assert call.bucket == "default"


def test_playback_as_app_hangs_up_at_the_end_and_mid_call_playback_resumes(world):
    service, telephony, _, rec = world
    dial(service, default_app=DialplanAction.PLAYBACK, default_app_args="/x.wav")
    leg = telephony.legs[0]
    leg.answer()
    assert leg.playing == [Playback("/x.wav")]
    leg.events.leg_playback_finished()
    assert leg.hangups == 1

    call = dial(service, default_app=DialplanAction.MUSIC_ON_HOLD)
    leg = telephony.legs[1]
    leg.answer()
    service.execute_dialplan("t", call.sid, DialplanAction.PLAYBACK, "/y.wav")
    leg.events.leg_playback_finished()
    assert leg.playing == [MusicOnHold(), Playback("/y.wav"), MusicOnHold()]
    assert leg.hangups == 0


def test_a_playback_that_cannot_play_is_refused_up_front_naming_the_file(world):
    """Refused at request time, rather than a call answered only to end at once."""
    service, telephony, *_ = world
    telephony.missing.add("/gone.wav")
    with pytest.raises(CallError) as err:
        dial(service, default_app=DialplanAction.PLAYBACK, default_app_args="/gone.wav")
    assert (err.value.code, err.value.message) == (ErrorCode.ERR_VALIDATION_FAILED, "PLAYBACK: /gone.wav: no such file")
    assert telephony.legs == []  # nothing dialled
    call = dial(service)
    telephony.legs[0].answer()
    with pytest.raises(CallError, match="^PLAYBACK: /gone.wav: no such file$"):
        service.execute_dialplan("t", call.sid, DialplanAction.PLAYBACK, "/gone.wav")
    assert telephony.legs[0].playing == [Silence()] and call.bucket == "default"  # still parked


def test_execute_dialplan_validation(world):
    service, telephony, *_ = world
    call = dial(service)
    telephony.legs[0].answer()
    with pytest.raises(CallError, match="no active call 'nope'"):
        service.execute_dialplan("t", "nope", DialplanAction.PARK, "")
    with pytest.raises(CallError, match="no parked call"):
        service.execute_dialplan("t", call.sid, DialplanAction.UNPARK_AND_BRIDGE, call.sid)
    service.execute_dialplan("t", call.sid, DialplanAction.HANGUP, "")
    assert telephony.legs[0].hangups == 1


AI = DialplanAction.AI_BIDIRECTIONAL_STREAM


@pytest.mark.parametrize("kw,spec", [
    ({"ai_websocket_url": "wss://bot/ws"}, AgentSpec("websocket", "wss://bot/ws")),
    ({"ai_quic_url": "https://bot:4433/agent"}, AgentSpec("quic", "https://bot:4433/agent", sample_rate=16000)),
    ({"default_app_args": "sales"}, AgentSpec("websocket", "wss://bots.example/sales", "pcm16", 16000, agent_id="sales")),
    ({"client_id": "sdk-1", "auto_barge_in": True, "barge_in_patience_ms": 300},
     AgentSpec("client", client_id="sdk-1", auto_barge_in=True, barge_in_patience_ms=300)),
])
def test_ai_stream_reaches_the_right_agent(world, kw, spec):
    service, telephony, *_ = world
    call = dial(service, default_app=AI, **kw)
    telephony.legs[0].answer()
    got, info = telephony.legs[0].agent
    assert got == spec and info.call_sid == call.sid and info.to == "+15551234567"


@pytest.mark.parametrize("app", [DialplanAction.ANSWER, AI])
def test_an_answered_call_with_nothing_to_play_sends_silence(world, app):
    """ANSWER, or an AI stream with no agent at all: silence, not nothing, so a symmetric-RTP
    carrier starts sending and NAT bindings hold."""
    service, telephony, *_ = world
    dial(service, default_app=app)
    telephony.legs[0].answer()
    assert telephony.legs[0].agent is None and telephony.legs[0].playing == [Silence()]


def test_unknown_agent_and_bad_urls_are_refused(world):
    service, *_ = world
    for kw in ({"default_app_args": "nobody"}, {"ai_websocket_url": "http://x"}, {"ai_quic_url": "ws://x"}):
        with pytest.raises(CallError) as err:
            dial(service, default_app=AI, **kw)
        assert err.value.code == ErrorCode.ERR_VALIDATION_FAILED


@pytest.mark.parametrize("failed,status,cause", [(False, "COMPLETED", 16), (True, "FAILED", 41)])
def test_the_agent_leaving_ends_the_call(world, failed, status, cause):
    service, telephony, _, rec = world
    dial(service, default_app=AI, ai_websocket_url="ws://bot")
    leg = telephony.legs[0]
    leg.answer()
    leg.events.agent_ended("gone", failed)
    assert leg.hangups == 1
    leg.close()
    assert (rec.got[-1].status, rec.got[-1].q850_cause) == (status, cause)
    assert leg.agent is None  # disconnected when the call left its app


def test_switching_away_from_the_ai_app_disconnects_the_agent(world):
    service, telephony, *_ = world
    call = dial(service, default_app=AI, ai_websocket_url="ws://bot")
    telephony.legs[0].answer()
    service.execute_dialplan("t", call.sid, DialplanAction.MUSIC_ON_HOLD, "")
    assert telephony.legs[0].agent is None
    service.execute_dialplan("t", call.sid, AI, "")
    assert telephony.legs[0].agent[0].url == "ws://bot"


V = DialplanAction


def answered(service, telephony):
    call = dial(service)
    telephony.legs[-1].answer()
    return call, telephony.legs[-1]


@pytest.mark.parametrize("action,args", [(V.TRANSFER, "+15557654321"), (V.MUTE, ""), (V.UNMUTE, "wire"),
                                         (V.HOLD, ""), (V.UNHOLD, ""), (V.SEND_DTMF, "5:rfc2833:100")])
def test_mid_call_verbs_need_an_answered_call(world, action, args):
    service, telephony, *_ = world
    call = dial(service)
    with pytest.raises(CallError, match=f"{action.name} needs an answered call; call '{call.sid}' is INITIATED") as err:
        service.execute_dialplan("t", call.sid, action, args)
    assert err.value.code == ErrorCode.ERR_VALIDATION_FAILED
    telephony.legs[0].answer()
    service.execute_dialplan("t", call.sid, action, args)
    telephony.legs[0].remote_bye()
    with pytest.raises(CallError, match=f"no active call '{call.sid}'"):
        service.execute_dialplan("t", call.sid, action, args)
    assert len(telephony.legs[0].requests) == 1


@pytest.mark.parametrize("action,args,message", [
    (V.TRANSFER, "", "TRANSFER to '': expected E.164"),
    (V.TRANSFER, "5551234", "TRANSFER to '5551234': expected E.164"),
    (V.MUTE, "loud", "MUTE app_args 'loud': expected '' .* or 'wire'"),
    (V.HOLD, "x", "HOLD takes no app_args, got 'x'"),
    (V.SEND_DTMF, "5", "expected '<digit>:<mode>:<ms>'"),
    (V.SEND_DTMF, "55:info:100", "SEND_DTMF digit '55': expected one of 0-9"),
    (V.SEND_DTMF, "E:info:100", "SEND_DTMF digit 'E'"),
    (V.SEND_DTMF, "5:sms:100", "SEND_DTMF mode 'sms': expected rfc2833, info, inband"),
    (V.SEND_DTMF, "5:info:39", "SEND_DTMF duration '39': expected whole milliseconds from 40 to 4000"),
    (V.SEND_DTMF, "5:info:4001", "SEND_DTMF duration '4001'"),
    (V.SEND_DTMF, "5:info:1e2", "SEND_DTMF duration '1e2'"),
])
def test_mid_call_verb_arguments_are_checked(world, action, args, message):
    service, telephony, *_ = world
    call, leg = answered(service, telephony)
    with pytest.raises(CallError, match=message) as err:
        service.execute_dialplan("t", call.sid, action, args)
    assert err.value.code == ErrorCode.ERR_VALIDATION_FAILED and leg.requests == []


def test_verbs_reach_the_leg_with_their_arguments(world):
    service, telephony, *_ = world
    call, leg = answered(service, telephony)
    for action, args in [(V.MUTE, ""), (V.MUTE, "wire"), (V.UNMUTE, ""), (V.HOLD, ""), (V.UNHOLD, ""),
                         (V.SEND_DTMF, "a:inband:40"), (V.SEND_DTMF, "#:INFO:4000"), (V.TRANSFER, "sip:bob@example.com")]:
        assert service.execute_dialplan("t", call.sid, action, args).status == "ANSWERED"
    assert leg.requests == [("mute", True, False), ("mute", True, True), ("mute", False, False), ("hold", True),
                            ("hold", False), ("dtmf", "A", "inband", 40), ("dtmf", "#", "info", 4000),
                            ("transfer", "sip:bob@example.com")]
    assert call.app.action is DialplanAction.PARK  # verbs are not apps: the call keeps its own


def test_a_successful_transfer_ends_the_call_completed(world):
    service, telephony, _, rec = world
    call, leg = answered(service, telephony)
    service.execute_dialplan("t", call.sid, V.TRANSFER, "+15557654321")
    assert call.transferring_to == "+15557654321" and leg.hangups == 0
    leg.transfer_result(True)
    assert leg.hangups == 1 and call.transferred_to == "+15557654321" and call.transferring_to == ""
    leg.close()
    assert [(e.event_type, e.status, e.q850_cause) for e in rec.got[-1:]] == [
        (EventType.CHANNEL_HANGUP_COMPLETE, "COMPLETED", 16)]


def test_a_failed_transfer_leaves_the_call_up_and_allows_another(world):
    service, telephony, _, rec = world
    call, leg = answered(service, telephony)
    service.execute_dialplan("t", call.sid, V.TRANSFER, "+15557654321")
    with pytest.raises(CallError, match="already being transferred to '\\+15557654321'"):
        service.execute_dialplan("t", call.sid, V.TRANSFER, "+15550000000")
    leg.transfer_result(False)
    assert leg.hangups == 0 and call.state.value == "ANSWERED" and call.transferred_to == ""
    assert rec.got[-1].event_type == EventType.CHANNEL_ANSWER
    service.execute_dialplan("t", call.sid, V.TRANSFER, "+15550000000")
    assert leg.requests == [("transfer", "+15557654321"), ("transfer", "+15550000000")]


def test_the_agents_transfer_goes_through_the_same_rules(world):
    service, telephony, *_ = world
    call = dial(service, default_app=AI, ai_websocket_url="ws://bot")
    leg = telephony.legs[0]
    leg.answer()
    leg.events.agent_transfer("not a number")  # refused: only logged, the agent has no RPC to fail
    assert leg.requests == []
    leg.events.agent_transfer("sip:desk@example.com")
    assert leg.requests == [("transfer", "sip:desk@example.com")] and call.transferring_to == "sip:desk@example.com"
    leg.transfer_result(True)
    assert leg.hangups == 1


def test_hold_and_resume_events_follow_what_the_far_end_agreed(world):
    service, telephony, _, rec = world
    call, leg = answered(service, telephony)
    service.execute_dialplan("t", call.sid, V.HOLD, "")
    assert rec.got[-1].event_type == EventType.CHANNEL_ANSWER  # nothing until the far end agrees
    leg.hold_changed(True)
    leg.hold_changed(True)  # a repeated HOLD changes nothing
    service.execute_dialplan("t", call.sid, V.UNHOLD, "")
    leg.hold_changed(False)
    events = [(e.event_type, e.status) for e in rec.got if e.call_sid == call.sid]
    assert events[-2:] == [(EventType.CHANNEL_HOLD, "ANSWERED"), (EventType.CHANNEL_RESUME, "ANSWERED")]
    assert len(events) == 4 and call.held is False
