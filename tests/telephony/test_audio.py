"""Prompt resolution: files, URLs (from a real HTTP server on loopback), hold music, announcements."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.peers.audio import write_tone_wav
from trunkline.calls.ports import Announcement, MusicOnHold, Playback, Silence
from trunkline.telephony.audio import AudioError, AudioLibrary


def frames(source, n: int) -> list[bytes]:
    return [source.read() for _ in range(n)]


@pytest.fixture
async def http_server():
    """Serves ``routes`` (path -> bytes) on 127.0.0.1 with HTTP/1.0; unknown paths get 404."""
    routes: dict[str, bytes] = {}

    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split()[1].decode()
        body = routes.get(path)
        head = b"HTTP/1.0 200 OK\r\n" if body is not None else b"HTTP/1.0 404 Not Found\r\n"
        body = body or b""
        writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", routes
    server.close()


async def test_playback_from_an_absolute_path_is_converted_to_8khz_and_ends(tmp_path: Path):
    wav = write_tone_wav(tmp_path / "t.wav", seconds=0.1, rate=16000)
    source = await AudioLibrary().source_for(Playback(str(wav)))
    got = frames(source, 6)
    assert [len(f) for f in got[:5]] == [320] * 5 and got[5] is None and source.finished


async def test_playback_from_a_file_url_reads_the_file_it_names(tmp_path: Path):
    wav = write_tone_wav(tmp_path / "with space.wav", seconds=0.04)
    source = await AudioLibrary().source_for(Playback(wav.as_uri()))
    assert [len(f) for f in frames(source, 2)] == [320, 320]


def test_unplayable_tells_a_missing_or_unusable_local_file_without_fetching_urls(tmp_path: Path):
    library = AudioLibrary()
    wav = write_tone_wav(tmp_path / "here.wav", seconds=0.04)
    assert library.unplayable(str(wav)) is None and library.unplayable(wav.as_uri()) is None
    assert library.unplayable(str(tmp_path / "gone.wav")) == f"{tmp_path / 'gone.wav'}: no such file"
    assert library.unplayable((tmp_path / "gone.wav").as_uri()) == f"{tmp_path / 'gone.wav'}: no such file"
    assert library.unplayable(str(tmp_path)) == f"{tmp_path}: no such file"  # a directory plays nothing
    assert "absolute" in library.unplayable("relative.wav")
    assert "absolute" in library.unplayable("file://elsewhere.example/x.wav")
    assert library.unplayable("http://127.0.0.1:9/never-fetched.wav") is None


async def test_playback_from_a_url_is_fetched_once_and_cached(tmp_path: Path, http_server):
    base, routes = http_server
    routes["/hello.wav"] = write_tone_wav(tmp_path / "h.wav", seconds=0.04).read_bytes()
    library = AudioLibrary()
    with pytest.raises(LookupError):
        library.ready_source(Playback(f"{base}/hello.wav"))
    assert (await library.source_for(Playback(f"{base}/hello.wav"))) is not None
    routes.clear()  # a second play must not need the server
    assert frames(library.ready_source(Playback(f"{base}/hello.wav")), 2)[1] is not None


@pytest.mark.parametrize("location,message", [
    ("relative.wav", "absolute"), ("/nonexistent/x.wav", "No such file"), ("{base}/missing.wav", "404")])
async def test_unplayable_prompts_are_clear_errors(http_server, location, message):
    base, _ = http_server
    with pytest.raises(AudioError, match=message):
        await AudioLibrary().source_for(Playback(location.format(base=base)))


async def test_not_a_wav_is_an_audio_error(tmp_path: Path):
    (tmp_path / "x.wav").write_bytes(b"ID3 this is an mp3")
    with pytest.raises(AudioError):
        await AudioLibrary().source_for(Playback(str(tmp_path / "x.wav")))


async def test_built_in_sources():
    library = AudioLibrary()
    hold = library.ready_source(MusicOnHold())
    assert not hold.finished and all(len(f) == 320 for f in frames(hold, 500))  # loops past its 8 s
    assert frames(library.ready_source(Silence()), 1) == [bytes(320)]
    beeps = library.ready_source(Announcement())
    assert any(f and max(f) for f in frames(beeps, 10))


async def test_prompts_are_padded_once_so_calls_share_them(tmp_path: Path):
    library = AudioLibrary()
    assert len(library.hold_music()) % 320 == 0
    wav = write_tone_wav(tmp_path / "odd.wav", seconds=0.0301)  # not a whole number of frames
    assert len(await library.load(str(wav))) % 320 == 0


async def test_configured_hold_music_replaces_the_built_in_loop(tmp_path: Path):
    wav = write_tone_wav(tmp_path / "moh.wav", seconds=0.04)
    hold = AudioLibrary(hold_music=wav).ready_source(MusicOnHold())
    assert frames(hold, 3)[2] == frames(AudioLibrary(hold_music=wav).ready_source(MusicOnHold()), 1)[0]  # 2-frame loop


class FakeMedia:
    """What InbandDtmf needs of a media session: its current source, and play()."""

    def __init__(self, source) -> None:
        self.source = source

    def play(self, source) -> None:
        self.source = source


def test_inband_dtmf_mixes_the_tone_over_the_source_then_steps_aside():
    from trunkline.media.dtmf import DtmfDetector
    from trunkline.media_engine.sources import FRAME_BYTES, WavPlayback
    from trunkline.telephony.audio import InbandDtmf

    prompt = WavPlayback(bytes(FRAME_BYTES * 2))  # two frames of a (silent) prompt, then it ends
    media = FakeMedia(prompt)
    media.play(InbandDtmf(media, "7", 50))  # 50 ms: three whole frames
    overlay = media.source
    played = [overlay.read() for _ in range(3)]
    assert media.source is prompt  # the last tone frame handed the prompt back
    assert [DtmfDetector().classify(frame) for frame in played] == ["7", "7", "7"]
    assert prompt.finished and prompt.read() is None  # ended under the tone: the session sees it next


def test_inband_dtmf_over_nothing_is_the_tone_alone_and_a_spent_one_put_back_steps_aside():
    from trunkline.media_engine.sources import FRAME_BYTES
    from trunkline.telephony.audio import InbandDtmf

    media = FakeMedia(None)  # the leg sends nothing (an answered call left to its app)
    overlay = InbandDtmf(media, "1", 40)
    media.play(overlay)
    assert [len(overlay.read()) for _ in range(2)] == [FRAME_BYTES, FRAME_BYTES] and media.source is None
    media.play(overlay)  # e.g. a bridge being undone restores what the leg played before it
    assert overlay.read() is None and not overlay.finished and media.source is None
