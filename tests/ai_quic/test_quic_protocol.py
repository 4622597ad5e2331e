"""The §7 wire format as pure code: datagram header, control lines, sequence numbers, call ids."""

from __future__ import annotations

import json

import pytest

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
from trunkline.ai.quic_protocol import (
    CALL_ID_SPACE,
    BargeIn,
    CallEnded,
    CallerDtmf,
    CallIdAllocator,
    GatewayMessage,
    GatewaySession,
    JobAssign,
    LineSplitter,
    Playout,
    SeqCounter,
    SeqWindow,
    encode_agent_message,
    encode_gateway_message,
    frame_bytes,
    pack_audio,
    parse_agent_message,
    parse_gateway_message,
    seq_newer,
    unpack_audio,
)
from trunkline.media.dtmf import ToneDetector, ToneGenerator

INFO = CallInfo("CA1", "MZ1", "+15550001", "+15550002", "trunk-a", "tenant-a", "agent-a")


# --- datagrams -----------------------------------------------------------------------------------


def test_frame_bytes_is_20ms_of_pcm16() -> None:
    assert frame_bytes(16000) == 640
    assert frame_bytes(8000) == 320
    assert frame_bytes(24000) == 960
    with pytest.raises(ValueError):
        frame_bytes(48000)  # a 1920-byte frame does not fit one QUIC packet


def test_header_layout_is_version_type_callid_seq_big_endian() -> None:
    pcm = bytes(range(256)) * 2 + bytes(128)
    datagram = pack_audio(0x1234, 0xBEEF, pcm)
    assert datagram[:6] == b"\x01\x01\x12\x34\xbe\xef"
    parsed = unpack_audio(datagram, 16000)
    assert (parsed.call_id, parsed.seq, parsed.pcm) == (0x1234, 0xBEEF, pcm)


@pytest.mark.parametrize(
    "datagram, why",
    [
        (b"\x01\x01\x00", "shorter than the header"),
        (b"\x02\x01\x00\x00\x00\x00" + bytes(640), "version 2"),
        (b"\x01\x02\x00\x00\x00\x00" + bytes(640), "type 2"),
        (b"\x01\x01\x00\x00\x00\x00" + bytes(639), "639 bytes"),
        (b"\x01\x01\x00\x00\x00\x00" + bytes(320), "320 bytes"),
        (b"\x01\x01\x00\x00\x00\x00", "0 bytes"),
    ],
)
def test_bad_datagrams_are_refused(datagram: bytes, why: str) -> None:
    with pytest.raises(AgentProtocolError, match=why):
        unpack_audio(datagram, 16000)


def test_seq_comparison_wraps() -> None:
    assert seq_newer(1, 0)
    assert seq_newer(0, 0xFFFF)
    assert seq_newer(10, 0xFFF0)
    assert not seq_newer(0xFFFF, 0)
    assert not seq_newer(5, 5)
    assert not seq_newer(0x8005, 5)  # exactly half the space away counts as old


def test_seq_counter_starts_at_zero_and_wraps() -> None:
    counter = SeqCounter()
    seqs = [counter.next() for _ in range(65538)]
    assert seqs[:3] == [0, 1, 2]
    assert seqs[65535:] == [65535, 0, 1]


def test_seq_window_drops_late_and_duplicate_datagrams_across_wrap() -> None:
    window = SeqWindow()
    assert [window.accept(s) for s in (65533, 65534, 65534, 65532, 0, 65535, 1, 3, 2)] == [
        True, True, False, False, True, False, True, True, False,
    ]


def test_call_ids_are_round_robin_and_reused_only_after_release() -> None:
    ids = CallIdAllocator()
    a, b, c = ids.allocate(), ids.allocate(), ids.allocate()
    assert (a, b, c) == (0, 1, 2)
    ids.release(b)
    assert ids.allocate() == 3  # not 1: a late datagram of the ended call must not hit a new one
    for _ in range(CALL_ID_SPACE - 4):
        ids.allocate()
    assert ids.allocate() == 1  # wrapped round to the only free id
    with pytest.raises(RuntimeError):
        ids.allocate()


# --- control lines -------------------------------------------------------------------------------


def _decoded(line: bytes) -> dict[str, object]:
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj: dict[str, object] = json.loads(line)
    return obj


def test_gateway_messages_on_the_wire() -> None:
    assign = JobAssign(7, "CA1", "MZ1", 16000, "+1", "+2", "trunk", "tenant", "agent", {"lang": "fr"})
    assert _decoded(encode_gateway_message(assign)) == {
        "type": "job_assign", "call_id": 7, "call_sid": "CA1", "stream_id": "MZ1", "sample_rate": 16000,
        "from": "+1", "to": "+2", "trunk_id": "trunk", "tenant_id": "tenant", "agent_id": "agent",
        "custom_parameters": {"lang": "fr"},
    }
    assert _decoded(encode_gateway_message(Playout(7, "m1"))) == {"type": "playout", "call_id": 7, "mark": "m1"}
    assert _decoded(encode_gateway_message(BargeIn(7))) == {"type": "clear", "call_id": 7, "reason": "barge_in"}
    assert _decoded(encode_gateway_message(CallerDtmf(7, "5"))) == {"type": "dtmf", "call_id": 7, "digit": "5"}
    assert _decoded(encode_gateway_message(CallEnded(7))) == {"type": "shutdown", "call_id": 7}


def test_gateway_messages_round_trip_through_the_agent_parser() -> None:
    messages: list[GatewayMessage] = [
        JobAssign(65535, "CA1", "MZ1", 24000, "+1", "+2", "t", "n", "", {"k": "v"}),
        Playout(1, "m"), BargeIn(2), CallerDtmf(3, "#"), CallEnded(4),
    ]
    for msg in messages:
        assert parse_gateway_message(encode_gateway_message(msg)) == msg


@pytest.mark.parametrize(
    "line, event",
    [
        (b'{"type":"flush","call_id":3,"mark":"greeting"}', AgentMark("greeting")),
        (b'{"type":"flush","call_id":3}', None),
        (b'{"type":"clear","call_id":3}', AgentClear()),
        (b'{"type":"shutdown","call_id":3}', AgentHangup()),
        (b'{"type":"transfer","call_id":3,"to":"sip:bob@example.com"}', AgentTransfer("sip:bob@example.com")),
        (b'{"type":"dtmf","call_id":3,"digits":"12#"}', AgentDtmf("12#")),
        (b'{"call_id":3,"type":"clear","future_field":[1,2]}\r\n', AgentClear()),
    ],
)
def test_agent_messages_become_events(line: bytes, event: object) -> None:
    message = parse_agent_message(line)
    assert (message.call_id, message.event) == (3, event)


def test_agent_encoder_matches_parser() -> None:
    for event in (None, AgentMark("m"), AgentClear(), AgentHangup(), AgentTransfer("x"), AgentDtmf("9")):
        message = parse_agent_message(encode_agent_message(12, event))
        assert (message.call_id, message.event) == (12, event)
    with pytest.raises(ValueError):
        encode_agent_message(12, AgentAudio(b"\x00\x00"))


@pytest.mark.parametrize(
    "line, why",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"call_id":1}', "'type'"),
        (b'{"type":"clear"}', "call_id"),
        (b'{"type":"clear","call_id":"1"}', "call_id"),
        (b'{"type":"clear","call_id":true}', "call_id"),
        (b'{"type":"clear","call_id":65536}', "call_id"),
        (b'{"type":"clear","call_id":-1}', "call_id"),
        (b'{"type":"media","call_id":1}', "unknown agent message type 'media'"),
        (b'{"type":"flush","call_id":1,"mark":5}', "'mark'"),
        (b'{"type":"transfer","call_id":1}', "'to'"),
        (b'{"type":"transfer","call_id":1,"to":""}', "'to' is empty"),
        (b'{"type":"dtmf","call_id":1,"digits":""}', "'digits' is empty"),
        (b'{"type":"playout","call_id":1,"mark":"m"}', "unknown agent message type 'playout'"),
    ],
)
def test_bad_agent_lines_are_refused(line: bytes, why: str) -> None:
    with pytest.raises(AgentProtocolError, match=why):
        parse_agent_message(line)


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"job_assign","call_id":1,"call_sid":"a","stream_id":"b","sample_rate":44100,"from":"",'
        b'"to":"","trunk_id":"","tenant_id":"","agent_id":""}',
        b'{"type":"job_assign","call_id":1,"call_sid":"a","stream_id":"b","sample_rate":16000,"from":"",'
        b'"to":"","trunk_id":"","tenant_id":"","agent_id":"","custom_parameters":{"n":1}}',
        b'{"type":"job_assign","call_id":1,"sample_rate":16000}',
        b'{"type":"dtmf","call_id":1,"digits":"1"}',
    ],
)
def test_bad_gateway_lines_are_refused_by_the_agent_parser(line: bytes) -> None:
    with pytest.raises(AgentProtocolError):
        parse_gateway_message(line)


def test_line_splitter_joins_chunks_and_skips_blank_lines() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":') == []
    assert splitter.feed(b'1}\n\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert splitter.feed(b":3}\n") == [b'{"c":3}']


def test_line_splitter_drops_an_overlong_line_and_recovers() -> None:
    splitter = LineSplitter(limit=10)
    out = splitter.feed(b"0123456789ABC")  # too long before its newline even arrives
    assert len(out) == 1 and isinstance(out[0], AgentProtocolError)
    assert splitter.feed(b"more of it\nok\n") == [b"ok"]
    out = splitter.feed(b"short\n" + b"x" * 11 + b"\nfine\n")
    assert out[0] == b"short" and isinstance(out[1], AgentProtocolError) and out[2] == b"fine"


# --- the gateway's session -----------------------------------------------------------------------


def test_open_call_allocates_ids_and_sends_job_assign() -> None:
    session = GatewaySession()
    first, line = session.open_call(INFO, {"lang": "en"})
    second, _ = session.open_call(INFO, {})
    assert (first, second) == (0, 1)
    assert _decoded(line) == {
        "type": "job_assign", "call_id": 0, "call_sid": "CA1", "stream_id": "MZ1", "sample_rate": 16000,
        "from": "+15550001", "to": "+15550002", "trunk_id": "trunk-a", "tenant_id": "tenant-a",
        "agent_id": "agent-a", "custom_parameters": {"lang": "en"},
    }
    assert _decoded(session.end_call(first)) == {"type": "shutdown", "call_id": 0}
    assert session.receive_datagram(pack_audio(first, 0, bytes(640))) is None  # forgotten
    assert session.receive_datagram(pack_audio(second, 0, bytes(640))) is not None


def test_caller_audio_is_resampled_into_whole_frames_with_per_call_seqs() -> None:
    session = GatewaySession(16000)
    a, _ = session.open_call(INFO, {})
    b, _ = session.open_call(INFO, {})
    tone = ToneGenerator((1000.0,), 8000)
    sent = []
    for _ in range(50):  # each 20 ms of caller audio goes out at once: nothing waits for the next
        out = session.caller_audio(a, tone.generate(160))
        assert len(out) == 1
        sent += out
    assert all(len(d) == 6 + 640 for d in sent)
    assert [unpack_audio(d, 16000).seq for d in sent] == list(range(len(sent)))
    assert all(unpack_audio(d, 16000).call_id == a for d in sent)
    detector = ToneDetector(1000.0, 16000)
    assert all(detector.detect(unpack_audio(d, 16000).pcm) for d in sent[1:])
    other = [d for _ in range(3) for d in session.caller_audio(b, bytes(320))]
    assert [unpack_audio(d, 16000).seq for d in other] == list(range(len(other)))  # b counts on its own


def test_agent_audio_comes_back_at_8khz_and_late_datagrams_are_dropped() -> None:
    session = GatewaySession(16000)
    call_id, _ = session.open_call(INFO, {})
    tone = ToneGenerator((1400.0,), 16000)
    frames = [tone.generate(320) for _ in range(3)]
    received = [session.receive_datagram(pack_audio(call_id, seq, pcm)) for seq, pcm in enumerate(frames)]
    assert all(m is not None and m.call_id == call_id for m in received)
    pcm8k = b"".join(m.event.audio for m in received if m is not None and isinstance(m.event, AgentAudio))
    assert len(pcm8k) == 3 * 320
    assert ToneDetector(1400.0, 8000).detect(pcm8k[320:])
    assert session.receive_datagram(pack_audio(call_id, 1, frames[0])) is None  # reordered: too late
    assert session.receive_datagram(pack_audio(call_id + 1, 0, frames[0])) is None  # no such call
    session.end_call(call_id)
    assert session.receive_datagram(pack_audio(call_id, 3, frames[0])) is None  # ended in flight
    with pytest.raises(AgentProtocolError):
        session.receive_datagram(pack_audio(call_id, 4, frames[0][:100]))


def test_receive_control_keeps_good_lines_around_bad_ones() -> None:
    session = GatewaySession()
    out = session.receive_control(b'{"type":"clear","call_id":0}\ngarbage\n{"type":"flush","call_id":0,"mark"')
    assert len(out) == 2 and isinstance(out[1], AgentProtocolError)
    assert out[0].call_id == 0 and out[0].event == AgentClear()  # type: ignore[union-attr]
    out = session.receive_control(b':"m"}\n')
    assert [(m.call_id, m.event) for m in out] == [(0, AgentMark("m"))]  # type: ignore[union-attr]
