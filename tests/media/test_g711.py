import numpy as np
import pytest

from trunkline.media.dtmf import ToneGenerator, tone_power
from trunkline.media.errors import MediaError
from trunkline.media.g711 import (
    PCMA,
    PCMU,
    Resampler,
    codec_by_name,
    codec_by_payload_type,
    name_for_payload_type,
    payload_type_for,
    transcoder,
)
from trunkline.media._audioop import audioop


def pcm(values):
    return np.asarray(values, dtype="<i2").tobytes()


def samples(data):
    return np.frombuffer(data, dtype="<i2").astype(np.int64)


ALL = np.arange(-32768, 32768, dtype=np.int64)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_round_trip_error_is_logarithmic(codec):
    encoded = codec.encode(pcm(ALL))
    assert len(encoded) == len(ALL)
    err = np.abs(samples(codec.decode(encoded)) - ALL)
    # Companding keeps the error proportional to the signal: within 1/16 of it, and small near zero.
    assert np.all(err <= np.maximum(16, np.abs(ALL) / 16))
    assert err[np.abs(ALL) < 32].max() <= 8


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_sine_snr_is_toll_quality(codec):
    tone = samples(ToneGenerator((1004.0,), level_dbfs=-10).generate(8000))
    decoded = samples(codec.decode(codec.encode(pcm(tone))))
    noise = decoded - tone
    snr = 10 * np.log10(np.sum(tone.astype(float) ** 2) / np.sum(noise.astype(float) ** 2))
    assert snr > 33


def test_variants_are_not_interchangeable():
    tone = ToneGenerator((440.0,), level_dbfs=-6).generate(160)
    assert PCMU.encode(tone) != PCMA.encode(tone)
    wrong = samples(PCMA.decode(PCMU.encode(tone)))
    assert np.abs(wrong - samples(tone)).max() > 1000


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_encoded_silence_decodes_to_near_zero(codec):
    silence = codec.silence(160)
    assert len(silence) == 160
    assert np.abs(samples(codec.decode(silence))).max() <= 8
    assert codec.encode(bytes(320)) == silence


def test_payload_type_mapping():
    assert payload_type_for("PCMU") == 0
    assert payload_type_for("pcma") == 8
    assert name_for_payload_type(0) == "PCMU"
    assert name_for_payload_type(8) == "PCMA"
    assert codec_by_name("PcMu") is PCMU
    assert codec_by_payload_type(8) is PCMA
    with pytest.raises(MediaError):
        codec_by_name("G729")
    with pytest.raises(MediaError):
        codec_by_payload_type(18)


@pytest.mark.parametrize("rate_in,rate_out", [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (16000, 24000)])
def test_streaming_resampler_matches_one_shot(rate_in, rate_out):
    signal = ToneGenerator((500.0,), rate_in, level_dbfs=-6).generate(rate_in)  # one second
    frame = rate_in // 50 * 2
    resampler = Resampler(rate_in, rate_out)
    streamed = b"".join(resampler.process(signal[i : i + frame]) for i in range(0, len(signal), frame))
    one_shot, _ = audioop.ratecv(signal, 2, 1, rate_in, rate_out, None)
    assert streamed == one_shot
    assert abs(len(streamed) // 2 - rate_out) <= 3
    # The tone keeps its pitch: nearly all its energy is still at 500 Hz.
    body = streamed[400:]
    energy = np.mean(samples(body).astype(float) ** 2)
    assert tone_power(body, 500.0, rate_out) > 0.9 * energy


def test_resampler_state_matters_and_reset_forgets_it():
    signal = ToneGenerator((300.0,), 8000).generate(320)
    r = Resampler(8000, 16000)
    first = r.process(signal[:320])
    second = r.process(signal[320:])
    fresh = Resampler(8000, 16000).process(signal[320:])
    assert second != fresh
    r.reset()
    assert r.process(signal[:320]) == first


def test_same_rate_is_passthrough_and_bad_rates_rejected():
    data = pcm([1, 2, 3])
    assert Resampler(8000, 8000).process(data) is data
    with pytest.raises(MediaError):
        Resampler(0, 8000)


@pytest.mark.parametrize(("source", "target"), [(PCMA, PCMU), (PCMU, PCMA)])
def test_transcoding_between_laws_is_the_round_trip_through_pcm(source, target):
    every_byte = bytes(range(256))
    assert transcoder(source, target)(every_byte) == target.encode(source.decode(every_byte))


def test_the_same_law_needs_no_transcoding():
    assert transcoder(PCMU, PCMU) is None and transcoder(PCMA, PCMA) is None
