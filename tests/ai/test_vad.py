import numpy as np
import pytest

from trunkline.ai.vad import VoiceActivityDetector
from trunkline.media.dtmf import ToneGenerator

RNG = np.random.default_rng(7)


def noise(frames: int, dbfs: float) -> list[bytes]:
    """White noise whose RMS is ``dbfs`` relative to full scale."""
    samples = RNG.normal(0.0, 32768.0 * 10 ** (dbfs / 20), 160 * frames)
    return chunk(samples)


def chunk(samples) -> list[bytes]:
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
    return [pcm[i : i + 320] for i in range(0, len(pcm), 320)]


def tone(frames: int, dbfs: float = -20.0, frequency: float = 440.0) -> list[bytes]:
    pcm = ToneGenerator((frequency,), level_dbfs=dbfs).generate(160 * frames)
    return [pcm[i : i + 320] for i in range(0, len(pcm), 320)]


def voice(frames: int, dbfs: float = -22.0) -> list[bytes]:
    """Vowel-like: a 140 Hz buzz with decaying harmonics under a slow syllable envelope, plus breath noise."""
    t = np.arange(160 * frames) / 8000.0
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    signal = buzz * envelope + RNG.normal(0, 0.05, len(t))
    signal *= 32768.0 * 10 ** (dbfs / 20) / np.sqrt(np.mean(signal**2))
    return chunk(signal + RNG.normal(0, 30, len(t)))


def run(vad: VoiceActivityDetector, frames: list[bytes]) -> list[bool]:
    return [vad.process(f) for f in frames]


def settled(vad: VoiceActivityDetector, dbfs: float = -55.0) -> VoiceActivityDetector:
    """A detector that has heard a second of line noise, as it has by the time an agent talks."""
    assert not any(run(vad, noise(50, dbfs)))
    return vad


def test_silence_and_low_noise_are_not_speech():
    assert not any(run(VoiceActivityDetector(), [bytes(320)] * 200))
    assert not any(run(VoiceActivityDetector(), noise(300, -60.0)))
    assert not any(run(VoiceActivityDetector(), noise(300, -35.0)))  # loud, but steady: it is the floor


def test_a_tone_is_speech_after_min_speech_ms():
    vad = settled(VoiceActivityDetector())
    assert run(vad, tone(5)) == [False, False, True, True, True]
    vad = settled(VoiceActivityDetector(min_speech_ms=100))
    assert run(vad, tone(6)) == [False] * 4 + [True] * 2
    vad = settled(VoiceActivityDetector(min_speech_ms=0))
    assert run(vad, tone(1)) == [True]


def test_voice_is_speech_and_its_pauses_are_bridged():
    vad = settled(VoiceActivityDetector())
    utterance = voice(40) + noise(6, -55.0) + voice(40)  # a 120 ms pause between phrases
    result = run(vad, utterance)
    assert result[:2] == [False, False]
    assert all(result[2:])


def test_a_loud_click_is_not_speech():
    vad = settled(VoiceActivityDetector())
    click = bytearray(noise(1, -55.0)[0])
    click[100:104] = (30000).to_bytes(2, "little", signed=True) * 2
    two_frame_click = [noise(1, -55.0)[0][:-2] + b"\x30\x75", b"\x30\x75" + noise(1, -55.0)[0][2:]]
    quiet = noise(20, -55.0)
    assert not any(run(vad, [bytes(click)] + quiet + tone(1, -3.0) + quiet + two_frame_click + quiet))


def test_hangover_holds_speech_through_short_gaps_then_ends():
    vad = settled(VoiceActivityDetector(hangover_ms=200))
    assert run(vad, tone(10))[-1]
    after = run(vad, noise(15, -55.0))
    assert after == [True] * 10 + [False] * 5
    vad = settled(VoiceActivityDetector(hangover_ms=200))
    run(vad, tone(10))
    assert all(run(vad, noise(9, -55.0) + tone(3) + noise(10, -55.0)))
    vad = settled(VoiceActivityDetector(hangover_ms=0))
    run(vad, tone(10))
    assert run(vad, noise(2, -55.0)) == [False, False]


def test_after_a_gap_speech_needs_min_speech_ms_again():
    vad = settled(VoiceActivityDetector(hangover_ms=40))
    run(vad, tone(10) + noise(5, -55.0))
    assert run(vad, tone(1) + noise(3, -55.0) + tone(3)) == [False] * 4 + [False, False, True]


def test_the_floor_adapts_to_a_new_steady_noise():
    vad = settled(VoiceActivityDetector())
    result = run(vad, noise(200, -30.0))  # a fan switched on, 25 dB louder
    assert result[2]  # at first it is indistinguishable from someone talking
    assert not any(result[-60:])  # but within about 2.5 s it is the floor
    assert vad.noise_floor == pytest.approx(32768 * 10 ** (-30 / 20), rel=0.2)
    assert run(vad, tone(3, -5.0))[-1]  # and speech above it is still heard


def test_lost_packets_do_not_drop_the_floor():
    vad = settled(VoiceActivityDetector(), -40.0)
    assert not any(run(vad, [bytes(320)] * 200 + noise(100, -40.0)))


def test_reset_forgets_floor_and_speech():
    vad = settled(VoiceActivityDetector())
    run(vad, tone(5))
    vad.reset()
    assert vad.noise_floor == float("inf")
    assert run(vad, noise(1, -55.0)) == [False]


def test_the_first_frame_is_never_speech():
    # With no floor yet there is nothing to be above; a call that opens with talking is caught
    # at the first quiet moment between words.
    vad = VoiceActivityDetector()
    assert run(vad, tone(5)) == [False] * 5
    result = run(vad, noise(3, -55.0) + tone(5))
    assert result[-1]


def test_threshold_decides_how_far_above_the_floor():
    assert not any(run(settled(VoiceActivityDetector(threshold_db=20.0), -40.0), noise(5, -25.0)))
    assert run(settled(VoiceActivityDetector(threshold_db=10.0), -40.0), noise(5, -25.0))[-1]


def test_talking_out_of_digital_silence_is_speech_at_once():
    # PCMU 0xFF is exact zero: a caller who was silent and starts talking, even with a steady tone,
    # must be heard before a floor could be learned, and stays heard while it goes on.
    vad = VoiceActivityDetector()
    result = run(vad, [bytes(320)] * 50 + tone(20))
    assert not any(result[:50]) and all(result[53:])


def test_negative_settings_are_rejected():
    for kwargs in ({"threshold_db": -1.0}, {"hangover_ms": -20}, {"min_speech_ms": -1}):
        with pytest.raises(ValueError):
            VoiceActivityDetector(**kwargs)
