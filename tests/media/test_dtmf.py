import numpy as np
import pytest

from trunkline.media.dtmf import (
    DTMF_DIGITS,
    DtmfDetector,
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    ToneDetector,
    ToneGenerator,
    decode_telephone_event,
    digit_to_event,
    encode_telephone_event,
    telephone_event_payloads,
    tone_power,
)
from trunkline.media.errors import MediaError
from trunkline.media.g711 import PCMU
from trunkline.media.rtp import RtpSender, parse_rtp


def test_payload_layout():
    assert encode_telephone_event(5, True, 10, 800) == bytes.fromhex("058a0320")
    ev = decode_telephone_event(bytes.fromhex("0b4a00a0"))  # reserved bit set: ignored
    assert (ev.event, ev.end, ev.volume, ev.duration, ev.digit) == (11, False, 10, 160, "#")
    with pytest.raises(MediaError):
        decode_telephone_event(b"\x01\x02")
    with pytest.raises(MediaError):
        encode_telephone_event(1, False, 64, 0)
    assert [digit_to_event(d) for d in "09*#aD"] == [0, 9, 10, 11, 12, 15]
    with pytest.raises(MediaError):
        digit_to_event("x")


def packets(event, ts, durations, ends=3):
    out = [(ts, encode_telephone_event(event, False, 10, d)) for d in durations]
    out += [(ts, encode_telephone_event(event, True, 10, durations[-1] + 160))] * ends
    return out


def test_receiver_reports_each_press_once_despite_retransmitted_ends():
    rx = DtmfReceiver()
    stream = packets(1, 1000, [160, 320, 480]) + packets(2, 5000, [160, 320])
    got = []
    for i, (ts, payload) in enumerate(stream):
        got += rx.feed(ts, payload, i * 0.02)
    got += rx.feed(1000, encode_telephone_event(1, True, 10, 640), 1.0)  # a very late straggler
    assert got == [DtmfDigit("1", 1000, 640), DtmfDigit("2", 5000, 480)]


def test_same_digit_twice_is_two_presses():
    rx = DtmfReceiver()
    got = []
    for ts in (1000, 3000):
        for payload in [p for _, p in packets(7, ts, [160])]:
            got += rx.feed(ts, payload, 0.0)
    assert [d.digit for d in got] == ["7", "7"]


def test_lost_end_packets_reported_by_next_event_or_timeout():
    rx = DtmfReceiver(timeout=0.5)
    assert rx.feed(100, encode_telephone_event(3, False, 10, 160), 0.0) == []
    assert rx.feed(100, encode_telephone_event(3, False, 10, 320), 0.02) == []
    got = rx.feed(900, encode_telephone_event(4, False, 10, 160), 0.3)  # next press, ends of 3 lost
    assert got == [DtmfDigit("3", 100, 320)]
    assert rx.poll(0.5) == []
    assert rx.poll(0.81) == [DtmfDigit("4", 900, 160)]
    assert rx.poll(2.0) == []
    assert rx.feed(900, encode_telephone_event(4, True, 10, 480), 2.1) == []


def test_emit_on_start_reports_once_at_the_first_packet():
    rx = DtmfReceiver(emit_on_start=True)
    results = [rx.feed(ts, p, 0.0) for ts, p in packets(9, 42, [160, 320])]
    assert results[0] == [DtmfDigit("9", 42, 160)]
    assert all(r == [] for r in results[1:])


def test_non_dtmf_events_are_ignored():
    rx = DtmfReceiver()
    assert rx.feed(1, encode_telephone_event(32, True, 10, 800), 0.0) == []


def test_payload_sequence_shape():
    seq = telephone_event_payloads(5, 800)
    decoded = [decode_telephone_event(p) for p, _ in seq]
    assert [m for _, m in seq] == [True] + [False] * 6
    assert [d.duration for d in decoded] == [160, 320, 480, 640, 800, 800, 800]
    assert [d.end for d in decoded] == [False] * 4 + [True] * 3
    short = telephone_event_payloads(1, 100)
    assert [m for _, m in short] == [True, False, False]
    with pytest.raises(MediaError):
        telephone_event_payloads(1, 70000)


def test_sender_packets_share_timestamp_and_keep_the_audio_clock():
    rtp = RtpSender(0xABC, 0, sequence=100, timestamp=8000)
    rtp.packetize(bytes(160))
    dtmf = DtmfSender(rtp, 101)
    dtmf.send("5", duration_ms=100, gap_ms=40)
    sent = []
    while True:
        pkt = dtmf.tick()
        if pkt is None:
            break
        sent.append(parse_rtp(pkt))
    assert len(sent) == 7
    assert {p.timestamp for p in sent} == {8160}
    assert [p.sequence for p in sent] == list(range(101, 108))
    assert [p.marker for p in sent] == [True] + [False] * 6
    assert all(p.payload_type == 101 and p.ssrc == 0xABC for p in sent)
    assert dtmf.active  # second gap tick still pending
    assert dtmf.tick() is None and not dtmf.active
    # Gap ticks belong to audio (this test sent none); the event ticks advanced the clock themselves.
    audio = parse_rtp(rtp.packetize(bytes(160)))
    assert audio.timestamp == 8160 + 7 * 160
    assert audio.sequence == 108
    assert audio.marker  # audio after the event starts a new talkspurt


def test_sender_to_receiver_loopback():
    rtp = RtpSender(1, 0)
    dtmf = DtmfSender(rtp, 101)
    dtmf.send("19#*", duration_ms=80)
    rx = DtmfReceiver()
    got = []
    tick = 0
    while dtmf.active:
        pkt = dtmf.tick()
        if pkt is None:
            rtp.packetize(bytes(160))
        else:
            p = parse_rtp(pkt)
            got += rx.feed(p.timestamp, p.payload, tick * 0.02)
        tick += 1
    assert "".join(d.digit for d in got) == "19#*"
    assert {d.duration for d in got} == {640}


def test_sender_rejects_bad_input():
    dtmf = DtmfSender(RtpSender(1, 0))
    with pytest.raises(MediaError):
        dtmf.send("5", duration_ms=9000)
    with pytest.raises(MediaError):
        dtmf.send("Z")


def noise(n, level, seed=0):
    return np.random.default_rng(seed).normal(0, level, n)


def to_pcm(x):
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def test_goertzel_power_reads_sine_power():
    amp = 10000.0
    tone = to_pcm(amp * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000))
    assert tone_power(tone, 1000) == pytest.approx(amp * amp / 2, rel=0.02)
    assert tone_power(tone, 1500) < amp * amp / 2 * 0.01


def test_tone_detector_finds_1khz_only():
    det = ToneDetector(1000)
    assert det.detect(ToneGenerator((1000.0,)).generate(160))
    assert det.detect(ToneGenerator((1004.0,)).generate(160))  # the standard test tone
    assert det.detect(to_pcm(np.frombuffer(ToneGenerator((1000.0,)).generate(160), "<i2") + noise(160, 300)))
    assert not det.detect(bytes(320))
    assert not det.detect(ToneGenerator((1500.0,)).generate(160))
    assert not det.detect(ToneGenerator((700.0,)).generate(160))
    assert not det.detect(ToneGenerator((1000.0,), level_dbfs=-50).generate(160))
    assert not det.detect(to_pcm(noise(160, 3000)))
    assert not det.detect(ToneGenerator((1000.0, 1400.0), level_dbfs=-10).generate(160))


def run_detector(frames):
    det = DtmfDetector()
    return "".join(d for d in (det.process(f) for f in frames) if d)


def press(digit, ms=100, level=-10):
    gen = ToneGenerator.dtmf(digit, level_dbfs=level)
    return [gen.generate(160) for _ in range(ms // 20)]


def pause(ms=60):
    return [bytes(320)] * (ms // 20)


def test_all_sixteen_digits_detected_once_each():
    frames = []
    for d in DTMF_DIGITS:
        frames += press(d) + pause()
    assert run_detector(frames) == DTMF_DIGITS


def test_digits_survive_g711_and_noise():
    frames = []
    for i, d in enumerate("2580#"):
        for f in press(d, level=-16) + pause():
            noisy = to_pcm(np.frombuffer(f, "<i2") + noise(160, 150, seed=i))
            frames.append(PCMU.decode(PCMU.encode(noisy)))
    assert run_detector(frames) == "2580#"


def test_held_digit_is_one_press_and_repeats_need_a_pause():
    assert run_detector(press("5", ms=1000)) == "5"
    assert run_detector(press("5") + pause(40) + press("5")) == "55"


def test_no_false_digits():
    frames = pause(200)
    frames += [to_pcm(noise(160, 4000, seed=s)) for s in range(20)]
    frames += press("1", ms=20)  # too short to be a press
    # A voiced vowel: 150 Hz fundamental with falling harmonics.
    t = np.arange(160 * 20) / 8000
    vowel = sum(8000 / k * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 20))
    frames += [to_pcm(vowel[i : i + 160]) for i in range(0, len(vowel), 160)]
    row_only = ToneGenerator((770.0,), level_dbfs=-10)
    frames += [row_only.generate(160) for _ in range(5)]
    assert run_detector(frames) == ""


def test_generator_is_phase_continuous_and_at_level():
    a = ToneGenerator((697.0, 1209.0))
    b = ToneGenerator((697.0, 1209.0))
    whole = np.frombuffer(a.generate(320), "<i2").astype(int)
    halves = np.frombuffer(b.generate(160) + b.generate(160), "<i2").astype(int)
    assert np.abs(whole - halves).max() <= 1
    single = np.frombuffer(ToneGenerator((1000.0,), level_dbfs=-10).generate(8000), "<i2").astype(float)
    assert np.sqrt(np.mean(single**2)) == pytest.approx(32767 * 10 ** (-0.5) / np.sqrt(2), rel=0.01)
    with pytest.raises(MediaError):
        ToneGenerator((697.0, 1209.0), level_dbfs=0)


def test_two_strong_tones_in_one_group_are_not_a_digit():
    t = np.arange(160) / 8000
    amp = 32767 * 10 ** (-10 / 20)
    chord = amp * np.sin(2 * np.pi * 697 * t) + amp / np.sqrt(2) * np.sin(2 * np.pi * 770 * t)
    frame = to_pcm(chord + amp * np.sin(2 * np.pi * 1209 * t))
    assert DtmfDetector().classify(frame) is None
    clean = to_pcm(amp * np.sin(2 * np.pi * 697 * t) + amp * np.sin(2 * np.pi * 1209 * t))
    assert DtmfDetector().classify(clean) == "1"
