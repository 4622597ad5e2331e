"""Audio sources, pulled frame by frame exactly as the clock pulls them."""

from __future__ import annotations

import struct
from array import array

import pytest

from trunkline.media.dtmf import ToneDetector, ToneGenerator
from trunkline.media.g711 import PCMU
from trunkline.media.wav import load_wav, write_wav
from trunkline.media_engine.sources import (
    FRAME_BYTES,
    SILENCE_FRAME,
    Mixer,
    Silence,
    StreamQueue,
    Tone,
    WavPlayback,
)


def frame_of(value: int) -> bytes:
    return struct.pack("<h", value) * (FRAME_BYTES // 2)


def numbered(n: int) -> bytes:
    """n frames, frame k filled with the sample value k, to follow frames through a queue."""
    return b"".join(frame_of(k) for k in range(n))


def sample(frame: bytes) -> int:
    return struct.unpack_from("<h", frame)[0]


def test_silence_is_endless_zero_frames():
    s = Silence()
    assert s.read() == SILENCE_FRAME == bytes(320)
    assert not s.finished


@pytest.mark.parametrize("freqs", [1000.0, (350.0, 440.0), 1000.5])
def test_tone_frames_are_continuous_sine(freqs):
    tone = Tone(freqs, level_dbfs=-10.0)
    reference = ToneGenerator(freqs if isinstance(freqs, tuple) else (freqs,), level_dbfs=-10.0)
    for _ in range(120):  # past the one-second table, where a replay could go wrong
        frame = tone.read()
        assert len(frame) == FRAME_BYTES
        assert frame == reference.generate(160)
    assert not tone.finished


def test_tone_is_detectable():
    tone = Tone(1000.0)
    detector = ToneDetector(1000.0)
    assert all(detector.detect(tone.read()) for _ in range(10))
    assert not ToneDetector(1400.0).detect(tone.read())


def test_wav_playback_plays_once_padding_the_last_frame():
    pcm = load_wav(write_wav(numbered(3) + frame_of(7)[:100]))
    playback = WavPlayback(pcm)
    frames = [playback.read() for _ in range(4)]
    assert [sample(f) for f in frames] == [0, 1, 2, 7]
    assert frames[3] == frame_of(7)[:100] + bytes(FRAME_BYTES - 100)
    assert playback.finished
    assert playback.read() is None
    assert playback.position_ms == 80


def test_wav_playback_loops():
    playback = WavPlayback(numbered(2), loop=True)
    assert [sample(playback.read()) for _ in range(5)] == [0, 1, 0, 1, 0]
    assert not playback.finished


def test_wav_playback_of_nothing_is_finished_at_once():
    assert WavPlayback(b"").finished
    with pytest.raises(ValueError):
        WavPlayback(b"", loop=True)
    with pytest.raises(ValueError):
        WavPlayback(b"\x00")


def test_stream_queue_rechunks_arbitrary_chunks():
    q = StreamQueue(max_frames=100)
    audio = numbered(5)
    for size in (1, 319, 7, 500, 3, 770):  # odd sizes, splitting samples
        chunk, audio = audio[:size], audio[size:]
        q.push(chunk)
    assert not audio
    assert q.queued_frames == 5
    assert [sample(q.read()) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert q.read() is None  # underrun, but a live stream never finishes
    assert not q.finished


def test_stream_queue_whole_frames_keep_their_order_around_a_partial_one():
    q = StreamQueue(max_frames=3)
    audio = numbered(6)
    q.push(audio[:320])  # whole frames, the usual case
    q.push(audio[320:480])  # half a frame...
    q.push(audio[480:800])  # ...then 320 bytes that straddle frames 1 and 2
    q.push(audio[800:1120])
    q.push(audio[1120:1920])
    assert q.dropped_frames == 3  # six frames into a queue of three: the oldest went
    assert [sample(q.read()) for _ in range(3)] == [3, 4, 5]


def test_stream_queue_keeps_a_partial_frame_until_flushed():
    q = StreamQueue()
    q.push(frame_of(5)[:200])
    assert q.read() is None
    q.push(frame_of(5)[200:240])
    q.flush()
    frame = q.read()
    assert frame == frame_of(5)[:240] + bytes(80)
    assert q.read() is None


def test_a_mu_law_stream_queue_keeps_mu_law_in_160_byte_frames():
    q = StreamQueue(codec=PCMU)
    ulaw = bytes(range(100, 240))  # 140 bytes: not even one frame
    q.push(ulaw)
    assert q.queued_frames == 0
    q.push(ulaw)  # 280: one frame and 120 bytes over
    assert q.read_encoded() == (ulaw + ulaw)[:160]
    q.flush()  # padded with µ-law silence (0xFF), not zero bytes, which are a loud negative sample
    assert q.read() == PCMU.decode((ulaw + ulaw)[160:] + b"\xff" * 40)
    assert q.read_encoded() is None


def test_stream_queue_overflow_drops_the_oldest_audio_and_counts_it():
    q = StreamQueue(max_frames=3)
    q.push(numbered(5))
    assert q.dropped_frames == 2
    assert q.queued_frames == 3
    assert [sample(q.read()) for _ in range(3)] == [2, 3, 4]


def test_marks_fire_in_order_once_the_audio_before_them_was_pulled():
    fired: list[str] = []
    q = StreamQueue(on_mark=fired.append)
    q.push(numbered(2))
    q.push_mark("after-two")
    q.push(frame_of(9))
    q.push_mark("after-three")
    q.push_mark("also-after-three")
    assert sample(q.read()) == 0
    assert sample(q.read()) == 1
    assert fired == []  # frame 1 has only just been handed out; it plays during the next 20 ms
    assert sample(q.read()) == 9
    assert fired == ["after-two"]
    assert q.read() is None
    assert fired == ["after-two", "after-three", "also-after-three"]
    assert q.pending_marks == 0


def test_a_mark_after_a_partial_frame_waits_for_that_audio():
    fired: list[str] = []
    q = StreamQueue(on_mark=fired.append)
    q.push(b"\x01\x00" * 10)
    q.push_mark("m")
    assert q.read() is not None
    assert fired == []
    q.read()
    assert fired == ["m"]


def test_overflow_keeps_marks_in_place():
    fired: list[str] = []
    q = StreamQueue(max_frames=2, on_mark=fired.append)
    q.push(numbered(1))
    q.push_mark("m1")
    q.push(numbered(3))  # frames 0,0,1,2 queued: the two oldest go, m1 stays ahead of the rest
    assert q.dropped_frames == 2
    assert fired == []
    assert sample(q.read()) == 1
    assert fired == ["m1"]
    assert sample(q.read()) == 2


def test_clear_empties_at_once_and_returns_unplayed_marks():
    fired: list[str] = []
    q = StreamQueue(on_mark=fired.append)
    q.push(numbered(3) + b"\x00" * 10)
    q.push_mark("a")
    q.push(numbered(1))
    q.push_mark("b")
    assert q.clear() == ["a", "b"]
    assert q.queued_frames == 0
    assert q.read() is None
    assert fired == []
    q.push(numbered(1))  # the partial frame went too: new audio starts on a frame boundary
    assert q.read() == frame_of(0)


def test_mixer_sums_with_clipping_and_drops_finished_sources():
    loud = WavPlayback(frame_of(30000) * 2)
    also_loud = WavPlayback(frame_of(10000))
    quiet = StreamQueue()
    quiet.push(frame_of(-5))
    mixer = Mixer(loud, also_loud, quiet)
    assert sample(mixer.read()) == 32767  # 30000 + 10000 - 5 clips
    assert sample(mixer.read()) == 30000
    assert mixer.sources == (quiet,)  # both playbacks have finished; the live queue stays
    assert mixer.read() is None
    assert not mixer.finished
    negative = Mixer(WavPlayback(frame_of(-30000)), WavPlayback(frame_of(-30000)))
    assert array("h", negative.read())[0] == -32768
    # One clip at the end, not after each pairwise add: the result does not depend on source order.
    order = Mixer(*(WavPlayback(frame_of(v)) for v in (30000, 10000, -20000)))
    assert sample(order.read()) == 20000


def test_mixer_sources_can_change():
    a, b = Silence(), Tone(1000.0)
    mixer = Mixer(a)
    mixer.add(b)
    assert ToneDetector(1000.0).detect(mixer.read())
    mixer.remove(b)
    assert mixer.read() == SILENCE_FRAME
