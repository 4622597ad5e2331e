"""Run baresip (Debian ``baresip-core``) as a headless auto-answering phone.

Why: SIPp proves the signalling; baresip is a real softphone with a real
media stack (jitter buffer, codecs, RTCP), so it is the end device Trunkline
should reach on outbound calls, and its recording proves audio crossed.

Facts found on baresip v1.0.0 (Debian bookworm), which shape the config:

* no audio device is needed.  ``audio_source aufile,<wav>`` (module
  ``aufile.so``) plays a WAV into the call once; when the file ends the
  menu module HANGS UP the call ("menu: audio error (0,end of file)"), so
  the WAV length is the longest a call to baresip can last.  v1.0.0's ``aufile`` has *no* player, and with no
  ``audio_player`` at all the call still works (the rx pipeline shows
  ``(play)``), so none is configured;
* received audio is recorded by the ``sndfile.so`` *filter*: it writes
  ``<snd_path>/dump-<Y-m-d-H-M-S>-dec.wav`` (decoded = what the far end
  sent) and ``...-enc.wav`` (what baresip sent), 8 kHz mono 16-bit for
  G.711.  One file pair per call, named by the second it started;
* auto-answer is the account parameter ``answermode=auto`` and is carried
  out by ``menu.so`` (``module_app``); without menu the call rings forever.
  Accounts are read by ``account.so`` (``module_tmp``) from ``accounts``;
* the INVITE's Request-URI user must equal the account user, otherwise
  baresip answers ``404 Not Found`` ("UA not found");
* ``net_interface 127.0.0.1`` (an address; ``lo`` fails with "could not
  get IPv4 address") plus ``-4`` keep SIP and SDP on loopback; otherwise
  the SDP carries the host's primary address;
* ``-t <sec>`` makes baresip quit by itself (our hard bound), SIGTERM makes
  it stop gracefully so libsndfile finalises the WAV headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from .audio import write_tone_wav
from .process import PeerProcess
from .sipp import LOOPBACK, free_udp_port, udp_port_bound

MODULE_DIR_CANDIDATES = (
    Path("/usr/lib/baresip/modules"),
    Path("/usr/lib/x86_64-linux-gnu/baresip/modules"),
    Path("/usr/local/lib/baresip/modules"),
)


def baresip_binary() -> str | None:
    """Path of ``baresip`` or ``None`` (tests skip on dev machines)."""
    return shutil.which("baresip")


def module_dir() -> Path:
    """The directory holding ``aufile.so``/``sndfile.so``/``menu.so``."""
    for d in MODULE_DIR_CANDIDATES:
        if (d / "aufile.so").is_file():
            return d
    raise FileNotFoundError("baresip modules not found (Debian package baresip-core)")


@dataclass
class Baresip(PeerProcess):
    """A baresip process with a generated config directory.

    user: account user; callers must dial ``sip:{user}@127.0.0.1:{port}``.
    port: SIP UDP port (free one picked when ``None``).
    play_wav: WAV sent into every call; default: a generated 440 Hz tone of
        ``tone_seconds``.  baresip HANGS UP when this WAV ends ("menu: audio
        error (0,end of file)"), so its length bounds every call.
    codecs: ``audio_codecs`` of the account, in preference order.
    answer_mode: ``"auto"`` answers at once, ``"manual"`` lets it ring.
    timeout_s: passed as ``-t``; baresip quits by itself after it and is
        killed ``kill_grace_s`` later if still alive.
    sip_trace: ``-s`` (SIP trace into the log, for debugging).
    extra_config: more ``name value`` config lines (override defaults).
    workdir: config + recordings + log live here (temp dir by default).
    """

    user: str = "agent"
    port: int | None = None
    play_wav: Path | None = None
    tone_seconds: float = 20.0
    codecs: Sequence[str] = ("PCMU", "PCMA")
    answer_mode: Literal["auto", "manual"] = "auto"
    timeout_s: float = 30.0
    kill_grace_s: float = 3.0
    sip_trace: bool = False
    extra_config: Mapping[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    keep_workdir: bool = False

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)
    _deadline: float = field(default=0.0, init=False, repr=False)
    rtp_ports: tuple[int, int] = field(default=(0, 0), init=False)

    # -- addresses -----------------------------------------------------------

    @property
    def target(self) -> str:
        """``host:port`` of baresip's SIP socket."""
        assert self.port is not None, "start() first"
        return f"{LOOPBACK}:{self.port}"

    @property
    def uri(self) -> str:
        """The SIP URI that reaches this phone's account."""
        return f"sip:{self.user}@{self.target}"

    @property
    def config_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "config"

    @property
    def recordings_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "recordings"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "baresip.log"

    def log(self) -> str:
        """Everything baresip printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- config --------------------------------------------------------------

    def config_text(self) -> str:
        """The ``config`` file contents (see module docstring for why)."""
        assert self.port is not None and self.play_wav is not None
        lines: dict[str, str] = {
            "poll_method": "epoll",
            "sip_listen": f"{LOOPBACK}:{self.port}",
            "net_interface": LOOPBACK,
            "call_local_timeout": "120",
            "call_max_calls": "4",
            "audio_source": f"aufile,{self.play_wav}",
            "audio_alert": f"aufile,{self.play_wav}",
            "ausrc_srate": "8000",
            "auplay_srate": "8000",
            "ausrc_channels": "1",
            "auplay_channels": "1",
            "audio_level": "no",
            "rtp_ports": f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "rtcp_mux": "no",
            "jitter_buffer_delay": "1-10",
            "rtp_stats": "no",
            "snd_path": str(self.recordings_dir),
            "module_path": str(module_dir()),
        }
        lines.update(self.extra_config)
        out = [f"{k}\t{v}" for k, v in lines.items()]
        out += [
            "module\tg711.so",
            "module\taufile.so",
            "module\tsndfile.so",
            "module_tmp\taccount.so",
            "module_app\tmenu.so",
        ]
        return "\n".join(out) + "\n"

    def accounts_text(self) -> str:
        """One local account, no registration (``regint=0``)."""
        return (
            f"<sip:{self.user}@{LOOPBACK}:{self.port};transport=udp>"
            f";regint=0;answermode={self.answer_mode};audio_codecs={','.join(self.codecs)}\n"
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        """Write the config dir and spawn baresip (own process group)."""
        binary = baresip_binary()
        if binary is None:
            raise FileNotFoundError("baresip not installed (Debian package baresip-core)")
        if self._proc is not None:
            raise RuntimeError("already started")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="baresip-"))
            self._own_workdir = True
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_udp_port()
        base = free_udp_port(8, even=True)
        self.rtp_ports = (base, base + 7)
        if self.play_wav is None:
            self.play_wav = write_tone_wav(self.workdir / "tone.wav", seconds=self.tone_seconds)
        (self.config_dir / "config").write_text(self.config_text())
        (self.config_dir / "accounts").write_text(self.accounts_text())
        (self.config_dir / "contacts").write_text("")
        argv = [binary, "-4", "-f", str(self.config_dir), "-t", str(max(1, int(self.timeout_s)))]
        if self.sip_trace:
            argv.append("-s")
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, "TERM": "dumb"},
                start_new_session=True,
            )
        self._deadline = time.monotonic() + self.timeout_s + self.kill_grace_s
        return self

    def _check_ready(self) -> bool:
        if self._proc is None:
            raise RuntimeError("not started")
        if self._proc.poll() is not None:
            raise RuntimeError(f"baresip exited early (rc={self._proc.returncode}):\n{self.log()[-2000:]}")
        assert self.port is not None
        return "baresip is ready." in self.log() and udp_port_bound(self.port, LOOPBACK)

    def _not_ready(self, timeout: float) -> str:
        return f"baresip not ready after {timeout}s:\n{self.log()[-2000:]}"

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Block until ``pattern`` (regex) appears in the log, e.g.
        ``r"Call established"`` or ``r"terminated \\(duration"``."""
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if time.monotonic() > end or not self.is_running():
                raise TimeoutError(f"{pattern!r} not in baresip log:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    async def await_log(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Async :meth:`wait_for_log`."""
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if time.monotonic() > end or not self.is_running():
                raise TimeoutError(f"{pattern!r} not in baresip log:\n{self.log()[-2000:]}")
            await asyncio.sleep(0.05)

    def stop(self, grace_s: float = 3.0) -> int | None:
        """Stop gracefully (SIGTERM: hang up, close WAVs), SIGKILL after
        ``grace_s``.  Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return proc.returncode

    async def astop(self, grace_s: float = 3.0) -> int | None:
        """Async :meth:`stop`."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + grace_s
            while proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.02)
            self.kill()
        return proc.returncode

    def cleanup(self) -> None:
        """Stop and remove an auto-created work dir."""
        self.stop()
        if self._own_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- recordings ----------------------------------------------------------

    def recordings(self, kind: Literal["dec", "enc"] = "dec") -> list[Path]:
        """Recorded WAVs, oldest first.  ``dec`` = audio baresip *received*
        (the far end's voice), ``enc`` = audio it sent."""
        if self.workdir is None:
            return []
        return sorted(self.recordings_dir.glob(f"dump-*-{kind}.wav"), key=lambda p: p.stat().st_mtime)

    def recording_path(self, kind: Literal["dec", "enc"] = "dec") -> Path:
        """The latest recording; call after the call ended / :meth:`stop`
        so the WAV header is complete."""
        recs = self.recordings(kind)
        if not recs:
            raise FileNotFoundError(f"no {kind} recording in {self.recordings_dir}:\n{self.log()[-2000:]}")
        return recs[-1]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
