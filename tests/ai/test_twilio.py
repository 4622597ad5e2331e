import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.ai.dialect import make_dialect
from trunkline.ai.events import (
    AgentAudio,
    AgentClear,
    AgentDtmf,
    AgentHangup,
    AgentMark,
    AgentProtocolError,
    AgentTransfer,
    CallInfo,
)
from trunkline.ai.pcm_dialect import Pcm16Dialect
from trunkline.ai.twilio import TwilioDialect
from trunkline.media.dtmf import ToneGenerator
from trunkline.media.g711 import pcmu_encode

INFO = CallInfo("CA123", "MZ456", "+15550001", "+15550002", "trunk-a", "AC789", "agent-x")


def dialect(**params: str) -> TwilioDialect:
    return TwilioDialect(INFO, dict(params))


def tone(samples: int = 160) -> bytes:
    """A 440 Hz frame, µ-law: what the dialect takes from and gives to the bridge."""
    return pcmu_encode(ToneGenerator((440.0,), level_dbfs=-12.0).generate(samples))


def test_opening_is_connected_then_start():
    connected, start = dialect(lang="en").opening()
    assert json.loads(connected) == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert json.loads(start) == {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC789",
            "streamSid": "MZ456",
            "callSid": "CA123",
            "tracks": ["inbound"],
            "customParameters": {
                "lang": "en",
                "call_sid": "CA123",
                "from": "+15550001",
                "to": "+15550002",
                "from_number": "+15550001",
                "to_number": "+15550002",
                "trunk_id": "trunk-a",
                "tenant_id": "AC789",
                "agent_id": "agent-x",
            },
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": "MZ456",
    }


def test_call_metadata_wins_over_a_configured_parameter_of_the_same_name():
    _, start = dialect(**{"from": "spoofed", "to_number": "spoofed", "x": "1"}).opening()
    params = json.loads(start)["start"]["customParameters"]
    assert (params["from"], params["to_number"], params["x"]) == ("+15550001", "+15550002", "1")


def test_media_messages_count_chunks_and_media_time():
    d = dialect()
    d.opening()
    frames = [tone() for _ in range(3)]
    messages = [json.loads(d.media(f)) for f in frames]
    for k, (msg, frame) in enumerate(zip(messages, frames)):
        assert msg == {
            "event": "media",
            "sequenceNumber": str(2 + k),
            "media": {
                "track": "inbound",
                "chunk": str(1 + k),
                "timestamp": str(20 * k),
                "payload": base64.b64encode(frame).decode(),
            },
            "streamSid": "MZ456",
        }


def test_timestamp_follows_audio_sent_not_messages():
    d = dialect()
    stamps = [json.loads(d.media(bytes(n)))["media"]["timestamp"] for n in (160, 80, 320, 160)]
    assert stamps == ["0", "20", "30", "70"]


def test_control_messages_and_one_sequence_across_all():
    d = dialect()
    d.opening()
    d.media(bytes(160))
    assert json.loads(d.dtmf("5")) == {
        "event": "dtmf",
        "streamSid": "MZ456",
        "sequenceNumber": "3",
        "dtmf": {"track": "inbound_track", "digit": "5"},
    }
    assert json.loads(d.mark_played('say "hi" 100%')) == {
        "event": "mark",
        "sequenceNumber": "4",
        "streamSid": "MZ456",
        "mark": {"name": 'say "hi" 100%'},
    }
    assert json.loads(d.barge_in()) == {
        "event": "clear",
        "sequenceNumber": "5",
        "streamSid": "MZ456",
        "clear": {"reason": "barge_in"},
    }
    media = json.loads(d.media(bytes(160)))
    assert (media["sequenceNumber"], media["media"]["chunk"]) == ("6", "2")
    (stop,) = d.closing()
    assert json.loads(stop) == {
        "event": "stop",
        "sequenceNumber": "7",
        "streamSid": "MZ456",
        "stop": {"accountSid": "AC789", "callSid": "CA123"},
    }


@pytest.mark.parametrize("sid", ['MZ"quoted"', "MZ%d%s%%", "MZ\\é\u2028", ""])
def test_media_fast_path_escapes_the_stream_id(sid):
    d = TwilioDialect(CallInfo("CA1", sid, "a", "b", "t", "AC1"), {})
    msg = json.loads(d.media(bytes(160)))
    assert msg["streamSid"] == sid
    assert msg["media"]["timestamp"] == "0"


@pytest.mark.parametrize("size", [1, 3, 159, 161, 333, 8000])
def test_agent_media_of_any_length_is_its_mu_law_bytes(size):
    ulaw = bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8))
    payload = base64.b64encode(ulaw).decode()
    message = json.dumps({"event": "media", "streamSid": "MZ456", "media": {"payload": payload}})
    (event,) = dialect().parse(message)
    assert event == AgentAudio(ulaw)


def test_caller_audio_round_trips_bit_exact():
    d = dialect()
    ulaw = tone(161)
    payload = json.loads(d.media(ulaw))["media"]["payload"]
    assert d.parse(json.dumps({"event": "media", "media": {"payload": payload}})) == [AgentAudio(ulaw)]


def test_every_agent_event():
    d = dialect()
    assert d.parse('{"event":"mark","streamSid":"MZ456","mark":{"name":"m1"}}') == [AgentMark("m1")]
    assert d.parse('{"event":"clear","streamSid":"MZ456"}') == [AgentClear()]
    assert d.parse('{"event":"hangup"}') == [AgentHangup()]
    assert d.parse('{"event":"transfer","transfer":{"to":"sip:desk@example.com"}}') == [
        AgentTransfer("sip:desk@example.com")
    ]
    assert d.parse('{"event":"dtmf","dtmf":{"digits":"12*#ab"}}') == [AgentDtmf("12*#AB")]
    assert d.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == []
    assert d.parse('{"event":"media","media":{"payload":""}}') == []
    assert d.parse(b'{"event":"hangup"}') == [AgentHangup()]  # the same JSON in a binary frame
    assert d.parse(' {"event":"hangup"}\n') == [AgentHangup()]  # whitespace around the object is JSON


@pytest.mark.parametrize(
    "message, reason",
    [
        ("not json", "bad JSON"),
        ('{"event":"hangup"} {"event":"hangup"}', "bad JSON"),  # one object per message
        ('{"event":"hangup"', "bad JSON"),
        (b"\xff\xfe\x00garbage", "bad JSON"),
        ("[" * 100_000, "bad JSON"),
        ("1" * 5000, "bad JSON"),  # past int's digit limit: a ValueError that is not a JSONDecodeError
        ('["event","media"]', "not a JSON object"),
        ("{}", "event"),
        ('{"event":7}', "event"),
        ('{"event":"start"}', "unknown event 'start'"),
        ('{"event":"nope"}', "unknown event 'nope'"),
        ('{"event":"media"}', "media"),
        ('{"event":"media","media":{"payload":5}}', "media.payload"),
        ('{"event":"media","media":{"payload":"***"}}', "bad base64"),
        ('{"event":"media","media":{"payload":"/w"}}', "bad base64"),
        ('{"event":"media","media":{"payload":"/w==/w=="}}', "bad base64"),
        ('{"event":"media","media":{"payload":"/w\\u00e9="}}', "bad base64"),
        ('{"event":"mark","mark":{}}', "mark.name"),
        ('{"event":"mark","mark":"m1"}', "mark"),
        ('{"event":"transfer","transfer":{"to":""}}', "transfer.to"),
        ('{"event":"transfer","transfer":{"to":null}}', "transfer.to"),
        ('{"event":"dtmf","dtmf":{"digits":"12x"}}', "dtmf.digits"),
        ('{"event":"dtmf","dtmf":{"digits":""}}', "dtmf.digits"),
        ('{"event":"dtmf","dtmf":{"digit":"1"}}', "dtmf.digits"),
    ],
)
def test_garbage_is_a_protocol_error_with_a_reason(message, reason):
    with pytest.raises(AgentProtocolError, match=reason.replace("*", r"\*")) as err:
        dialect().parse(message)
    assert len(str(err.value)) < 80


def _parse_or_protocol_error(message):
    try:
        events = dialect().parse(message)
    except AgentProtocolError:
        return
    assert isinstance(events, list)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_fuzz_raw_input_only_raises_protocol_errors(message):
    _parse_or_protocol_error(message)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_events = st.sampled_from(["media", "mark", "clear", "hangup", "transfer", "dtmf", "connected", "stop", ""])
_fields = st.sampled_from(["media", "mark", "transfer", "dtmf", "payload", "name", "to", "digits"])


@settings(max_examples=500, deadline=None)
@given(
    _events,
    st.dictionaries(_fields, _json | st.dictionaries(_fields, _json | st.text(alphabet="+/=Az09#*", max_size=12))),
)
def test_fuzz_near_miss_messages_only_raise_protocol_errors(event, body):
    _parse_or_protocol_error(json.dumps({"event": event, **body}))


def test_make_dialect_defaults_to_twilio():
    for name in ("twilio", "TWILIO", ""):
        d = make_dialect(name, INFO, {})
        assert isinstance(d, TwilioDialect) and d.name == "twilio" and d.sample_rate == 8000
    assert make_dialect("twilio", INFO, {}, sample_rate=16000).sample_rate == 8000  # µ-law 8 kHz, always
    assert isinstance(make_dialect("pcm16", INFO, {}, 24000), Pcm16Dialect)
    with pytest.raises(ValueError, match="unknown agent dialect"):
        make_dialect("opus", INFO, {})
