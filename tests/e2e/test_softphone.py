"""Audio that a person would hear: a baresip softphone (headless, auto-answer) takes Trunkline's
calls; tones are checked in baresip's recordings and in what Trunkline receives."""

from __future__ import annotations

import asyncio
import shutil
import wave
from pathlib import Path

import pytest

from tests.e2e.calls import watched_client
from tests.peers.audio import write_tone_wav
from tests.peers.baresip import Baresip
from trunkline.enums import DialplanAction
from trunkline.media.dtmf import ToneDetector

pytestmark = pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt: baresip-core)")


def tone_fraction(frames: list[bytes], freq: float) -> float:
    """Share of 20 ms frames in which ``freq`` is the dominant tone."""
    detector = ToneDetector(freq, 8000)
    frames = [f for f in frames if len(f) == 320]
    return sum(detector.detect(f) for f in frames) / max(1, len(frames))


def wav_frames(path: Path) -> list[bytes]:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        data = w.readframes(w.getnframes())
    return [data[i:i + 320] for i in range(0, len(data), 320)]


def phone(tmp_path: Path, name: str, freq: float, seconds: float) -> Baresip:
    tone = write_tone_wav(tmp_path / f"{name}.wav", freq_hz=freq, seconds=seconds)
    return Baresip(user=name, play_wav=tone, timeout_s=30, workdir=tmp_path / name).start().wait_ready()


def phone_trunk(*phones: Baresip) -> dict:
    return {"trunks": [{"id": p.user, "host": "127.0.0.1", "port": int(p.target.rsplit(":", 1)[1])} for p in phones]}


async def test_softphone_hears_our_tone_and_we_hear_its(start_gateway, tmp_path):
    softphone = phone(tmp_path, "agent", 440.0, 4.0)
    try:
        gateway = await start_gateway(phone_trunk(softphone))
        client, watch = await watched_client(gateway)
        ours = write_tone_wav(tmp_path / "ours.wav", freq_hz=1000.0, seconds=2.0, rate=16000)  # converted to 8 kHz
        call = await client.dial(softphone.uri, trunk_id="agent", default_app=DialplanAction.PLAYBACK,
                                 default_app_args=str(ours))
        heard: list[bytes] = []
        await watch.until(call.call_sid, "ANSWERED")
        gateway.calls.find("local", call.call_sid).leg.listen(lambda pcm: heard.append(pcm or b""))
        hangup = await watch.hangup(call.call_sid)  # PLAYBACK as the app hangs up when the file ends
        # The 2 s file, then BYE; before it, silence for the few frames the file took to load.
        assert hangup.status == "COMPLETED" and 100 <= hangup.packets_sent <= 110
        await softphone.await_log(r"terminated", timeout=5)
    finally:
        softphone.stop()
    assert tone_fraction(heard, 440.0) > 0.6  # baresip's tone reached Trunkline
    assert tone_fraction(wav_frames(softphone.recording_path("dec")), 1000.0) > 0.6  # ours reached baresip


async def test_two_parked_calls_bridged_hear_each_other(start_gateway, tmp_path):
    low, high = phone(tmp_path, "low", 440.0, 12.0), phone(tmp_path, "high", 880.0, 12.0)
    try:
        gateway = await start_gateway(phone_trunk(low, high))
        client, watch = await watched_client(gateway)
        a = await client.dial(low.uri, trunk_id="low", default_app=DialplanAction.PARK, default_app_args="vip")
        b = await client.dial(high.uri, trunk_id="high", default_app=DialplanAction.PARK)
        await watch.until(a.call_sid, "ANSWERED")
        await watch.until(b.call_sid, "ANSWERED")
        buckets = {x.bucket_id: x.pending_count for x in await client.get_active_buckets()}
        assert buckets == {"vip": 1, "default": 1}
        assert await client.get_bucket_calls("vip") == [a.call_sid]
        await client.execute_dialplan(b.call_sid, DialplanAction.UNPARK_AND_BRIDGE, a.call_sid)
        assert await client.get_active_buckets() == []
        await asyncio.sleep(2.5)
        await client.terminate(b.call_sid)  # the survivor returns to its bucket
        await watch.hangup(b.call_sid)
        assert await client.get_bucket_calls("vip") == [a.call_sid]
        assert await client.execute_bucket_action("vip", 0) == 1
        await watch.hangup(a.call_sid)
        await low.await_log(r"terminated", timeout=5)
        await high.await_log(r"terminated", timeout=5)
    finally:
        low.stop()
        high.stop()
    assert tone_fraction(wav_frames(low.recording_path("dec")), 880.0) > 0.3
    assert tone_fraction(wav_frames(high.recording_path("dec")), 440.0) > 0.3
