"""Turning the domain's audio wishes into media sources: files, URLs, hold music, announcements.

Decoded prompts are cached (they are small at 8 kHz and many calls play the same ones); URLs are
fetched off the event loop with a size cap, so one slow or huge download cannot stall the media.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from trunkline.calls.ports import Announcement, AudioSpec, MusicOnHold, Playback, Silence
from trunkline.media._audioop import audioop
from trunkline.media.dtmf import ToneGenerator
from trunkline.media.wav import load_wav
from trunkline.media_engine import sources
from trunkline.media_engine.session import MediaSession

log = logging.getLogger(__name__)

URL_SCHEMES = ("http://", "https://")
MAX_PROMPT_BYTES = 32 << 20
FETCH_TIMEOUT_S = 15.0
CACHE_ENTRIES = 64


class AudioError(Exception):
    """A prompt that cannot be played (missing, not a PCM WAV, unreachable URL)."""


def _beeps() -> bytes:
    """The default bucket announcement: two short 440 Hz beeps."""
    tone = ToneGenerator((440.0,), 8000, level_dbfs=-12)
    beep = tone.generate(8000 * 3 // 10)
    gap = bytes(2 * 8000 * 2 // 10)
    return _whole_frames(beep + gap + beep + gap)


def _whole_frames(pcm: bytes) -> bytes:
    """Pad a prompt to whole 20 ms frames once, here, so every call playing it shares this buffer:
    a playback of an unpadded prompt makes its own padded copy (128 kB per call for hold music)."""
    pad = -len(pcm) % sources.FRAME_BYTES
    return pcm + bytes(pad) if pad else pcm


class AudioLibrary:
    def __init__(self, hold_music: Path | None = None) -> None:
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._hold_music_path = hold_music
        self._hold_music: bytes | None = None
        self._beeps = _beeps()

    def hold_music(self) -> bytes:
        if self._hold_music is None:
            if self._hold_music_path is not None:
                data = self._hold_music_path.read_bytes()
            else:
                data = resources.files("trunkline.telephony").joinpath("assets/hold_music.wav").read_bytes()
            self._hold_music = _whole_frames(load_wav(data))
        return self._hold_music

    def ready_source(self, audio: AudioSpec) -> sources.AudioSource:
        """The source at once, or :class:`LookupError` when a file or URL must be loaded first."""
        if isinstance(audio, Silence):
            return sources.Silence()
        if isinstance(audio, MusicOnHold):
            return sources.WavPlayback(self.hold_music(), loop=True)
        if isinstance(audio, Announcement) and not audio.source:
            return sources.WavPlayback(self._beeps)
        pcm = self._cache.get(audio.source)
        if pcm is None:
            raise LookupError(audio.source)
        return sources.WavPlayback(pcm)

    async def source_for(self, audio: AudioSpec) -> sources.AudioSource:
        """Like :meth:`ready_source`, loading what it must; :class:`AudioError` when it cannot."""
        try:
            return self.ready_source(audio)
        except LookupError:
            assert isinstance(audio, (Playback, Announcement))
            return sources.WavPlayback(await self.load(audio.source))

    def unplayable(self, location: str) -> str | None:
        """Why ``location`` cannot be played, as far as a glance tells: a local file that is not
        there. A URL is not fetched for this; what it holds is found out when it plays."""
        if location.startswith(URL_SCHEMES):
            return None
        path = _local_path(location)
        if path is None:
            return _NOT_A_LOCATION.format(location)
        if not path.is_file():
            return f"{path}: no such file"
        return None

    async def load(self, location: str) -> bytes:
        cached = self._cache.get(location)
        if cached is not None:
            self._cache.move_to_end(location)
            return cached
        if location.startswith(URL_SCHEMES):
            data = await asyncio.to_thread(_fetch, location)
        else:
            path = _local_path(location)
            if path is None:
                raise AudioError(_NOT_A_LOCATION.format(location))
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise AudioError(f"{location}: {exc.strerror}") from None
        try:
            pcm = _whole_frames(load_wav(data))
        except ValueError as exc:
            raise AudioError(f"{location}: {exc}") from None
        self._cache[location] = pcm
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return pcm


_NOT_A_LOCATION = "{!r}: playback needs an absolute .wav path, a file:// URL or an http(s) URL"


def _local_path(location: str) -> Path | None:
    """The file an absolute path or a ``file://`` URL names; None for anything else."""
    if location.startswith("file://"):
        url = urlsplit(location)
        if url.netloc not in ("", "localhost"):
            return None
        location = url2pathname(url.path)
    path = Path(location)
    return path if path.is_absolute() else None


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - http(s) only, checked above
            data = response.read(MAX_PROMPT_BYTES + 1)
    except OSError as exc:
        raise AudioError(f"{url}: {exc}") from None
    if len(data) > MAX_PROMPT_BYTES:
        raise AudioError(f"{url}: larger than {MAX_PROMPT_BYTES >> 20} MiB")
    return data


class InbandDtmf:
    """A key press as its dual tone mixed over whatever the leg plays, for ``duration_ms`` (whole
    frames, rounded up); then the leg gets its own source back.

    It takes the leg's place as the media's source, so it must hand the source back itself: on the
    read that plays its last tone frame, or on the first read after it when something (a bridge
    being undone) put it back in place. A tone is synthesised frame by frame, so a long key press
    costs nothing up front.
    """

    __slots__ = ("_media", "_inner", "_tone", "_frames_left")

    def __init__(self, media: MediaSession, digit: str, duration_ms: int) -> None:
        self._media = media
        self._inner = media.source
        self._tone = ToneGenerator.dtmf(digit)
        self._frames_left = -(-duration_ms // sources.FRAME_MS)

    @property
    def finished(self) -> bool:
        return False  # it never ends by itself: it steps aside for the source it covers

    def read(self) -> bytes | None:
        if not self._frames_left:
            self._step_aside()
            return None
        frame = self._inner.read() if self._inner is not None else None
        tone = self._tone.generate(sources.FRAME_SAMPLES)
        self._frames_left -= 1
        if not self._frames_left:
            self._step_aside()
        return tone if frame is None else audioop.add(frame, tone, 2)

    def _step_aside(self) -> None:
        if self._media.source is self:
            self._media.play(self._inner)
