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
from trunkline.media.dtmf import ToneDetector, ToneGenerator

INFO = CallInfo("CA123", "MZ456", "+15550001", "+15550002", "trunk-a", "AC789", "agent-x")
RATES = (8000, 16000, 24000)


def audio(events) -> bytes:
    events = list(events)
    assert all(isinstance(e, AgentAudio) for e in events)
    return b"".join(e.audio for e in events)


def frames(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


@pytest.mark.parametrize("rate", RATES)
def test_opening_is_one_json_start(rate):
    (start,) = Pcm16Dialect(INFO, {"lang": "en"}, rate).opening()
    assert isinstance(start, str)
    assert json.loads(start) == {
        "event": "start",
        "call_sid": "CA123",
        "stream_id": "MZ456",
        "from": "+15550001",
        "to": "+15550002",
        "trunk_id": "trunk-a",
        "tenant_id": "AC789",
        "agent_id": "agent-x",
        "sample_rate": rate,
        "encoding": "pcm16le",
        "channels": 1,
        "custom_parameters": {"lang": "en"},
    }


def test_control_messages_to_the_agent():
    d = Pcm16Dialect(INFO, {})
    assert json.loads(d.dtmf("#")) == {"event": "dtmf", "dtmf": {"digit": "#"}}
    assert json.loads(d.mark_played('a "b"')) == {"event": "mark", "mark": {"name": 'a "b"'}}
    assert json.loads(d.barge_in()) == {"event": "clear", "clear": {"reason": "barge_in"}}
    assert [json.loads(m) for m in d.closing()] == [{"event": "stop", "call_sid": "CA123"}]


def test_8khz_passes_audio_through_untouched():
    d = Pcm16Dialect(INFO, {})
    pcm = ToneGenerator((1000.0,)).generate(160)
    assert d.media(pcm) == pcm
    assert d.parse(pcm) == [AgentAudio(pcm)]


@pytest.mark.parametrize("rate", RATES)
def test_caller_tone_keeps_its_frequency_up_and_back_down(rate):
    d = Pcm16Dialect(INFO, {}, rate)
    gen = ToneGenerator((1000.0,), level_dbfs=-10.0)
    wire = [d.media(gen.generate(160)) for _ in range(50)]
    per_frame = 320 * rate // 8000
    assert all(isinstance(w, bytes) and len(w) == per_frame for w in wire)  # 20 ms each, the first too
    upsampled = b"".join(wire)
    at_rate = frames(upsampled[per_frame:], per_frame)
    assert all(ToneDetector(1000, rate).detect(f) for f in at_rate)
    assert not any(ToneDetector(1500, rate).detect(f) for f in at_rate)
    # The agent echoes it back in chunk sizes that do not line up with anything, some odd.
    back = audio(ev for i in range(0, len(upsampled), 333) for ev in d.parse(upsampled[i : i + 333]))
    assert abs(len(back) - len(upsampled) * 8000 // rate) <= 4
    at_8k = frames(back[320:], 320)
    assert len(at_8k) >= 45
    assert all(ToneDetector(1000).detect(f) for f in at_8k)
    assert not any(ToneDetector(1500).detect(f) for f in at_8k)


@pytest.mark.parametrize("rate", (16000, 24000))
def test_agent_tone_at_its_rate_is_heard_at_8khz(rate):
    d = Pcm16Dialect(INFO, {}, rate)
    agent = ToneGenerator((700.0,), rate, level_dbfs=-10.0).generate(rate)  # one second
    back = audio(d.parse(agent))
    assert abs(len(back) - 16000) <= 4
    assert all(ToneDetector(700).detect(f) for f in frames(back[320:], 320))


def test_odd_byte_counts_are_carried_to_the_next_frame():
    d = Pcm16Dialect(INFO, {})
    pcm = ToneGenerator((1000.0,)).generate(200)
    assert audio(ev for b in range(len(pcm)) for ev in d.parse(pcm[b : b + 1])) == pcm
    d = Pcm16Dialect(INFO, {})
    assert audio(d.parse(pcm[:7]) + d.parse(pcm[7:100]) + d.parse(pcm[100:])) == pcm
    assert d.parse(b"") == []


def test_clear_drops_the_half_sample_of_cleared_audio():
    d = Pcm16Dialect(INFO, {})
    assert d.parse(b"\x01\x02\x03") == [AgentAudio(b"\x01\x02")]
    assert d.parse('{"event":"clear"}') == [AgentClear()]
    assert d.parse(b"\x04\x05") == [AgentAudio(b"\x04\x05")]  # not b"\x03\x04"


def test_agent_control_events():
    d = Pcm16Dialect(INFO, {}, 16000)
    assert d.parse('{"event":"mark","mark":{"name":"m1"}}') == [AgentMark("m1")]
    assert d.parse('{"event":"hangup"}') == [AgentHangup()]
    assert d.parse('{"event":"transfer","transfer":{"to":"+15550003"}}') == [AgentTransfer("+15550003")]
    assert d.parse('{"event":"dtmf","dtmf":{"digits":"9#"}}') == [AgentDtmf("9#")]
    assert d.parse('{"event":"connected"}') == []


@pytest.mark.parametrize(
    "message", ["", "nope", "[]", '{"event":"media","media":{"payload":"AAAA"}}', '{"event":"dtmf","dtmf":{}}']
)
def test_bad_control_is_a_protocol_error(message):
    with pytest.raises(AgentProtocolError):
        Pcm16Dialect(INFO, {}).parse(message)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_fuzz_text_only_raises_protocol_errors(message):
    try:
        Pcm16Dialect(INFO, {}, 16000).parse(message)
    except AgentProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RATES), st.lists(st.binary(max_size=701), max_size=6))
def test_fuzz_binary_is_always_audio(rate, chunks):
    d = Pcm16Dialect(INFO, {}, rate)
    out = audio(ev for c in chunks for ev in d.parse(c))
    assert len(out) % 2 == 0
    if rate == 8000:
        total = sum(map(len, chunks))
        assert out == b"".join(chunks)[: total & ~1]


def test_sample_rate_must_be_supported():
    with pytest.raises(ValueError, match="sample rate"):
        Pcm16Dialect(INFO, {}, 22050)
    with pytest.raises(ValueError, match="sample rate"):
        make_dialect("pcm16", INFO, {}, 44100)
    d = make_dialect("PCM16", INFO, {"k": "v"}, 16000)
    assert (d.name, d.sample_rate) == ("pcm16", 16000)
    assert len(d.media(np.zeros(160, "<i2").tobytes())) in (638, 640)
