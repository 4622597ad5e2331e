import struct
import wave
import io

import numpy as np
import pytest

from trunkline.media.dtmf import tone_power
from trunkline.media.errors import WavError
from trunkline.media.wav import WavFormat, load_wav, parse_wav, write_wav


def sine(freq, rate, seconds, amp=8000.0):
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype("<i2")


def test_16k_stereo_to_8k_mono():
    left = sine(1000, 16000, 1.0)
    right = sine(1000, 16000, 1.0, amp=4000.0)
    stereo = np.column_stack([left, right]).ravel().astype("<i2").tobytes()
    out = load_wav(write_wav(stereo, 16000, channels=2))
    samples = np.frombuffer(out, "<i2").astype(float)
    assert abs(len(samples) - 8000) <= 2
    # The mix is the average of both channels: amplitude 6000, and the 1 kHz tone survives.
    assert np.sqrt(np.mean(samples[100:] ** 2)) == pytest.approx(6000 / np.sqrt(2), rel=0.03)
    assert tone_power(out[200:], 1000.0, 8000) > 0.95 * np.mean(samples[100:] ** 2)


def test_stereo_is_mixed_not_left_only():
    left = sine(440, 8000, 0.1)
    stereo = np.column_stack([left, -left]).ravel().astype("<i2").tobytes()
    assert np.abs(np.frombuffer(load_wav(write_wav(stereo, 8000, 2)), "<i2")).max() <= 1


def test_8bit_unsigned_mono():
    raw = bytes([128, 255, 0, 128])
    data = (
        b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
        + b"data" + struct.pack("<I", len(raw)) + raw
    )
    assert list(np.frombuffer(load_wav(data), "<i2")) == [0, 127 << 8, -128 << 8, 0]


def test_extensible_pcm_and_odd_chunks_are_read():
    pcm = sine(500, 8000, 0.05).tobytes()
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 16000, 2, 16) + struct.pack("<HHI", 22, 16, 4) + guid
    chunks = b"LIST" + struct.pack("<I", 3) + b"abc\x00" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(pcm)) + pcm
    data = b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
    assert parse_wav(data) == (WavFormat(8000, 1, 2), pcm)
    assert load_wav(data) == pcm


def test_write_wav_is_readable_by_stdlib():
    pcm = sine(300, 16000, 0.1).tobytes()
    with wave.open(io.BytesIO(write_wav(pcm, 16000)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == pcm
    with pytest.raises(WavError):
        write_wav(b"\x00\x00\x00", 8000, 1)


def test_24khz_mono_resampled_to_8k():
    out = load_wav(write_wav(sine(400, 24000, 0.5).tobytes(), 24000))
    assert abs(len(out) // 2 - 4000) <= 2


def _with_fmt(tag, bits=16, channels=1, payload=b"\x00\x00"):
    fmt = struct.pack("<HHIIHH", tag, channels, 8000, 8000 * channels * bits // 8, channels * bits // 8, bits)
    chunks = b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "too short"),
        (b"RIFX" + bytes(8), "RIFF"),
        (_with_fmt(3, bits=32, payload=bytes(4)), "not integer PCM"),  # IEEE float
        (_with_fmt(6, bits=8), "not integer PCM"),  # A-law WAV
        (_with_fmt(1, bits=12), "12 bits"),
        (_with_fmt(1, channels=3, payload=bytes(6)), "channels"),
        (_with_fmt(1)[:-1], "truncated"),
        (_with_fmt(1)[:36], "no data chunk"),
        (b"RIFF" + struct.pack("<I", 4) + b"WAVE", "no fmt chunk"),
    ],
)
def test_bad_files_raise_clear_errors(data, message):
    with pytest.raises(WavError, match=message):
        load_wav(data)
