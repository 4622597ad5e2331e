"""Run SIPp (Debian package ``sip-tester``) as a real SIP peer on loopback.

Why a wrapper: Trunkline's tests need a carrier (UAS) or a caller (UAC) that
speaks SIP exactly like third-party equipment, and SIPp is the standard tool
for that.  Driving it by hand is error prone: it wants free SIP/media/control
ports, draws a curses screen unless told otherwise, writes its traces next to
the scenario under pid-dependent names and reports results only through its
exit code and a CSV.  :class:`Sipp` hides all of that:

* every port (SIP ``-p``, media ``-mp`` plus the ``+2`` echo port, control
  ``-cp``) is picked free on 127.0.0.1 and SIPp is bound there only
  (``-i``/``-mi``/``-bind_local``), so several peers run side by side;
* it always runs in the foreground with stdin closed (``-nostdin``), output
  sent to files, a SIPp global ``-timeout`` *and* a hard kill deadline, so no
  process can outlive a test;
* traces go to a per-run directory under fixed names (``-trace_msg``,
  ``-trace_err``, ``-trace_stat``, ``-trace_screen``, ``-trace_logs``) and
  are parsed into a :class:`SippResult` (exit code, successful/failed calls,
  every SIP message that was on the wire).

Verified against ``SIPp v3.6.1-SCTP-PCAP-RTPSTREAM`` (Debian bookworm).  Both
a blocking API (``start``/``wait_ready``/``wait``) and awaitable twins
(``astart``/``await_ready``/``await_result``) are offered; the async ones only
poll with ``asyncio.sleep`` so the event loop running Trunkline never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from .process import PeerProcess

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Directory holding the bundled SIPp XML scenarios."""

LOOPBACK = "127.0.0.1"

SIPP_PCAP_DIR = Path("/usr/share/sip-tester")
"""Where Debian's ``sip-tester`` ships RTP pcaps (``g711a.pcap``, DTMF)."""

DEFAULT_KEYS: Mapping[str, str] = {
    "caller": "sipp",
    "answer_dir": "recvonly",
    "auth_user": "trunkline",
    "auth_pass": "secret",
    "auth_realm": "carrier.test",
    "auth_nonce": "b7a1c2d3e4f5061728394a5b6c7d8e9f",
}
"""``-key`` values every run gets unless overridden.

SIPp refuses a scenario that uses an unset ``[keyword]``, and passing an
unused ``-key`` is harmless, so the bundled scenarios can rely on these.
"""


def sipp_binary() -> str | None:
    """Return the path of ``sipp`` or ``None`` (tests skip on dev machines)."""
    return shutil.which("sipp")


def scenario_path(name: str) -> Path:
    """Path of a bundled scenario, by file name with or without ``.xml``."""
    path = SCENARIO_DIR / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.is_file():
        raise FileNotFoundError(f"no bundled SIPp scenario {path.name!r} in {SCENARIO_DIR}")
    return path


# ---------------------------------------------------------------------------
# ports


def _udp_port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_udp_port(span: int = 1, host: str = LOOPBACK, *, even: bool = False) -> int:
    """Return a port ``p`` such that UDP ``p .. p+span-1`` are free on ``host``.

    Why: SIPp and baresip bind ports we must know in advance (to build
    targets and SDP expectations), and RTP wants an even port with the next
    ones (RTCP, SIPp's ``+2`` video echo port) free too.  The kernel picks
    the base (bind to 0) so parallel test runs rarely collide; the block is
    then checked.  There is an unavoidable race between this check and the
    peer's own bind, which is harmless on a test machine.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            base = int(sock.getsockname()[1])
        if even and base % 2:
            base += 1
        if base + span - 1 > 65535:
            continue
        if all(_udp_port_free(p, host) for p in range(base, base + span)):
            return base
    raise RuntimeError(f"no block of {span} free UDP ports on {host}")


def udp_port_bound(port: int, host: str = LOOPBACK) -> bool:
    """True if some socket is bound to UDP ``host:port`` (or the wildcard).

    Reads ``/proc/net/udp`` instead of probing with a packet, because a probe
    would reach the peer as an unexpected SIP message and skew its stats.
    """
    want_port = f"{port:04X}"
    want_hosts = {socket.inet_aton(host)[::-1].hex().upper(), "00000000"}
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:  # not Linux: fall back to a bind attempt
        return not _udp_port_free(port, host)
    for line in lines:
        local = line.split()[1]
        addr, _, lport = local.partition(":")
        if lport == want_port and addr in want_hosts:
            return True
    return False


# ---------------------------------------------------------------------------
# digest helper for the 407 scenario


def digest_response(
    *, username: str, realm: str, password: str, method: str, uri: str, nonce: str
) -> str:
    """RFC 2617 digest ``response`` without qop: MD5(HA1:nonce:HA2).

    Used to precompute the only acceptable answers for ``uas_auth_407``
    because SIPp's ``<verifyauth>`` cannot read ``Proxy-Authorization``.
    """
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    return hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()


# ---------------------------------------------------------------------------
# results


_MSG_HEAD = re.compile(
    r"^(?P<transport>\w+) message (?P<dir>sent|received)\b.*$", re.MULTILINE
)


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from SIPp's ``-trace_msg`` log.

    ``direction`` is from SIPp's point of view: ``"sent"`` went out of the
    SIPp peer (i.e. *to* Trunkline), ``"received"`` came in (*from* it).
    """

    direction: Literal["sent", "received"]
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        """Request method, or ``None`` for a response."""
        return self.first_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        """Response status code, or ``None`` for a request."""
        if self.is_request:
            return None
        return int(self.first_line.split()[1])

    @property
    def cseq_method(self) -> str | None:
        m = re.search(r"^CSeq:\s*\d+\s+(\S+)", self.text, re.MULTILINE | re.IGNORECASE)
        return m.group(1).upper() if m else None

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or ``None``."""
        m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", self.text, re.MULTILINE | re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def body(self) -> str:
        head, sep, body = self.text.partition("\n\n")
        return body if sep else ""


def parse_message_trace(text: str) -> list[SipMessage]:
    """Split a ``-trace_msg`` log into :class:`SipMessage` objects.

    The log is a sequence of blocks: a dashed timestamp line, a line such as
    ``UDP message sent (507 bytes):`` and the raw message.  Line endings are
    normalised to ``\\n``.
    """
    text = text.replace("\r\n", "\n")
    heads = list(_MSG_HEAD.finditer(text))
    messages: list[SipMessage] = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        chunk = text[head.end() : end]
        # drop the dashed separator (and timestamp) that starts the next block
        chunk = re.sub(r"\n-{10,}[^\n]*\n?$", "\n", chunk.rstrip("\n") + "\n")
        chunk = chunk.strip("\n")
        direction: Literal["sent", "received"] = "sent" if head.group("dir") == "sent" else "received"
        messages.append(SipMessage(direction, chunk + "\n"))
    return messages


@dataclass(frozen=True)
class SippStats:
    """Cumulative counters from the last row of SIPp's ``-trace_stat`` CSV."""

    created: int
    successful: int
    failed: int
    raw: Mapping[str, str]

    @classmethod
    def from_csv(cls, path: Path) -> SippStats | None:
        """Parse the final row; ``None`` if SIPp did not write the file."""
        try:
            rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
        except OSError:
            return None
        if len(rows) < 2:
            return None
        raw = {k: v for k, v in zip(rows[0], rows[-1], strict=False) if k}

        def num(key: str) -> int:
            try:
                return int(float(raw.get(key, "0") or 0))
            except ValueError:
                return 0

        return cls(
            created=num("TotalCallCreated"),
            successful=num("SuccessfulCall(C)"),
            failed=num("FailedCall(C)"),
            raw=raw,
        )


@dataclass
class SippResult:
    """Everything a test may want to assert about a finished SIPp run."""

    returncode: int
    timed_out: bool
    stats: SippStats | None
    messages: list[SipMessage]
    message_log: str
    error_log: str
    screen: str
    stdout: str
    stderr: str
    workdir: Path

    @property
    def ok(self) -> bool:
        """SIPp's own verdict: exit 0 means every call succeeded."""
        return self.returncode == 0 and not self.timed_out

    @property
    def successful(self) -> int:
        if self.stats is not None:
            return self.stats.successful
        return 1 if self.returncode == 0 else 0

    @property
    def failed(self) -> int:
        if self.stats is not None:
            return self.stats.failed
        return 1 if self.returncode == 1 else 0

    def requests(self, method: str, direction: Literal["sent", "received"] | None = None) -> list[SipMessage]:
        """Requests with ``method`` (e.g. ``"CANCEL"``), optionally by direction."""
        method = method.upper()
        return [
            m for m in self.messages
            if m.method == method and (direction is None or m.direction == direction)
        ]

    def responses(
        self,
        status: int | None = None,
        *,
        direction: Literal["sent", "received"] | None = None,
        cseq_method: str | None = None,
    ) -> list[SipMessage]:
        """Responses filtered by status, direction and CSeq method."""
        out = []
        for m in self.messages:
            if m.status is None:
                continue
            if status is not None and m.status != status:
                continue
            if direction is not None and m.direction != direction:
                continue
            if cseq_method is not None and m.cseq_method != cseq_method.upper():
                continue
            out.append(m)
        return out

    def final_responses(self, direction: Literal["sent", "received"] | None = None) -> list[int]:
        """Status codes >= 200 of INVITE transactions, in wire order.

        Retransmissions appear more than once, which keeps the order honest.
        """
        return [
            m.status for m in self.responses(direction=direction, cseq_method="INVITE")
            if m.status is not None and m.status >= 200
        ]

    def describe(self) -> str:
        """Compact diagnostic for assertion messages."""
        flow = ", ".join(
            f"{'>' if m.direction == 'sent' else '<'}{m.method or m.status}" for m in self.messages
        )
        return (
            f"rc={self.returncode} timed_out={self.timed_out} successful={self.successful} "
            f"failed={self.failed} flow=[{flow}] stderr={self.stderr.strip()[-800:]!r} "
            f"errors={self.error_log.strip()[-1500:]!r} workdir={self.workdir}"
        )


# ---------------------------------------------------------------------------
# the process


@dataclass
class Sipp(PeerProcess):
    """One SIPp process running a scenario on loopback.

    Parameters (all optional except ``scenario``):

    scenario: bundled scenario name (``"uas_answer"``) or a path.
    remote: ``host:port`` target; required for a UAC, ``None`` for a UAS.
    port: local SIP port (``-p``); a free one is picked when ``None``.
    media_port: local media port (``-mp``); picked free (4-port block).
    rtp_echo: ``-rtp_echo`` (echo RTP received on ``media_port``).
    calls: ``-m``, stop after this many calls (default 1).
    rate, rate_period_ms: ``-r`` / ``-rp`` call rate.
    concurrent_limit: ``-l``.
    pause_ms: ``-d``, length of each bare ``<pause/>`` in the scenario.
    timeout_s: SIPp ``-timeout`` with ``-timeout_error``; the Python side
        kills the process ``kill_grace_s`` later if it still runs.
    recv_timeout_ms: ``-recv_timeout`` (per expected message).
    auth_user, auth_password: ``-au``/``-ap`` used by ``[authentication]``.
    service: ``-s``, user part of the Request-URI (``[service]``).
    inject_files: ``-inf`` CSV files; ``inf_index`` adds ``-infindex f n``.
    keys: extra ``-key name value`` (merged over :data:`DEFAULT_KEYS`).
    global_vars: ``-set name value``.
    scenario_vars: ``@NAME@`` substitutions; when given, the scenario is
        rendered into the work dir first (for attributes SIPp parses at
        load time, e.g. ``play_pcap_audio``).
    extra_args: appended verbatim.
    workdir: where traces go; a fresh temp dir (removed on ``cleanup()``
        unless ``keep_workdir``) when ``None``.
    """

    scenario: str | Path
    remote: str | None = None
    port: int | None = None
    media_port: int | None = None
    rtp_echo: bool = False
    calls: int | None = 1
    rate: float | None = None
    rate_period_ms: int | None = None
    concurrent_limit: int | None = None
    pause_ms: int | None = None
    timeout_s: float = 30.0
    recv_timeout_ms: int | None = None
    auth_user: str | None = None
    auth_password: str | None = None
    service: str | None = None
    inject_files: Sequence[Path] = ()
    inf_index: Sequence[tuple[str, int]] = ()
    keys: Mapping[str, str] = field(default_factory=dict)
    global_vars: Mapping[str, str] = field(default_factory=dict)
    scenario_vars: Mapping[str, str] = field(default_factory=dict)
    extra_args: Sequence[str] = ()
    workdir: Path | None = None
    keep_workdir: bool = False
    kill_grace_s: float = 5.0
    local_ip: str = LOOPBACK

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _deadline: float = field(default=0.0, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)
    _result: SippResult | None = field(default=None, init=False, repr=False)
    _timed_out: bool = field(default=False, init=False, repr=False)
    control_port: int = field(default=0, init=False)

    # -- derived -----------------------------------------------------------

    @property
    def scenario_file(self) -> Path:
        s = self.scenario
        return Path(s) if isinstance(s, Path) or "/" in str(s) else scenario_path(str(s))

    @property
    def target(self) -> str:
        """``host:port`` where this SIPp listens (give it to Trunkline)."""
        assert self.port is not None, "start() first"
        return f"{self.local_ip}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _paths(self) -> dict[str, Path]:
        assert self.workdir is not None
        w = self.workdir
        return {
            "stat": w / "stats.csv",
            "msg": w / "messages.log",
            "err": w / "errors.log",
            "screen": w / "screen.log",
            "log": w / "logs.log",
            "stdout": w / "stdout.txt",
            "stderr": w / "stderr.txt",
        }

    def _render_scenario(self) -> Path:
        src = self.scenario_file
        if not self.scenario_vars:
            return src
        text = src.read_text()
        for name, value in self.scenario_vars.items():
            text = text.replace(f"@{name}@", value)
        leftover = re.findall(r"@[A-Z_]+@", text)
        if leftover:
            raise ValueError(f"{src.name}: unsubstituted {sorted(set(leftover))}")
        assert self.workdir is not None
        out = self.workdir / src.name
        out.write_text(text)
        return out

    def command(self) -> list[str]:
        """The full argv (ports must already be assigned)."""
        binary = sipp_binary()
        if binary is None:
            raise FileNotFoundError("sipp not installed (Debian package sip-tester)")
        p = self._paths()
        argv: list[str] = [binary]
        if self.remote:
            argv.append(self.remote)
        argv += [
            "-sf", str(self._render_scenario()),
            "-i", self.local_ip, "-p", str(self.port), "-bind_local",
            "-mi", self.local_ip, "-mp", str(self.media_port),
            "-cp", str(self.control_port),
            "-nostdin",
            "-timeout", f"{int(max(1, round(self.timeout_s)))}s", "-timeout_error",
            "-trace_stat", "-stf", str(p["stat"]), "-fd", "1",
            "-trace_msg", "-message_file", str(p["msg"]),
            "-trace_err", "-error_file", str(p["err"]),
            "-trace_screen", "-screen_file", str(p["screen"]),
            "-trace_logs", "-log_file", str(p["log"]),
        ]
        if self.rtp_echo:
            argv.append("-rtp_echo")
        if self.calls is not None:
            argv += ["-m", str(self.calls)]
        if self.rate is not None:
            argv += ["-r", f"{self.rate:g}"]
        if self.rate_period_ms is not None:
            argv += ["-rp", str(self.rate_period_ms)]
        if self.concurrent_limit is not None:
            argv += ["-l", str(self.concurrent_limit)]
        if self.pause_ms is not None:
            argv += ["-d", str(self.pause_ms)]
        if self.recv_timeout_ms is not None:
            argv += ["-recv_timeout", str(self.recv_timeout_ms)]
        if self.auth_user is not None:
            argv += ["-au", self.auth_user]
        if self.auth_password is not None:
            argv += ["-ap", self.auth_password]
        if self.service is not None:
            argv += ["-s", self.service]
        for f in self.inject_files:
            argv += ["-inf", str(f)]
        for fname, col in self.inf_index:
            argv += ["-infindex", fname, str(col)]
        for k, v in {**DEFAULT_KEYS, **self.keys}.items():
            argv += ["-key", k, v]
        for k, v in self.global_vars.items():
            argv += ["-set", k, v]
        argv += list(self.extra_args)
        return argv

    # -- lifecycle (sync) ----------------------------------------------------

    def start(self) -> Self:
        """Spawn SIPp in the foreground (own process group, stdin closed)."""
        if self._proc is not None:
            raise RuntimeError("already started")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="sipp-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_udp_port()
        if self.media_port is None:
            self.media_port = free_udp_port(4, even=True)
        self.control_port = free_udp_port()
        argv = self.command()
        (self.workdir / "command.txt").write_text(" ".join(argv) + "\n")
        p = self._paths()
        env = {**os.environ, "TERM": "dumb", "COLUMNS": "120", "LINES": "40"}
        with open(p["stdout"], "wb") as out, open(p["stderr"], "wb") as err:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        self._deadline = time.monotonic() + self.timeout_s + self.kill_grace_s
        return self

    def _check_ready(self) -> bool:
        if self._proc is None:
            raise RuntimeError("not started")
        if self._proc.poll() is not None:
            raise RuntimeError(f"sipp exited early: {self._collect().describe()}")
        assert self.port is not None
        return udp_port_bound(self.port, self.local_ip)

    def _not_ready(self, timeout: float) -> str:
        return f"sipp not listening on {self.target} after {timeout}s"

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to finish and return the parsed :class:`SippResult`.

        ``timeout`` defaults to the run's hard deadline (``timeout_s`` +
        ``kill_grace_s`` after start); past it the process group is killed
        and ``timed_out`` is set.
        """
        if self._result is not None:
            return self._result
        assert self._proc is not None, "start() first"
        end = self._deadline if timeout is None else time.monotonic() + timeout
        try:
            self._proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self.kill()
        return self._collect()

    def stop(self, grace_s: float = 3.0) -> SippResult:
        """Ask SIPp to finish (SIGUSR1: no new calls, let running ones end),
        then SIGTERM/SIGKILL if it does not exit within ``grace_s``."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGUSR1)
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.wait()

    def cleanup(self) -> None:
        """Kill if needed and remove an auto-created work dir."""
        self.kill()
        if self._own_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _collect(self) -> SippResult:
        assert self._proc is not None
        p = self._paths()

        def read(path: Path) -> str:
            try:
                return path.read_text(errors="replace")
            except OSError:
                return ""

        rc = self._proc.poll()
        msg_log = read(p["msg"])
        result = SippResult(
            returncode=rc if rc is not None else -9,
            timed_out=self._timed_out,
            stats=SippStats.from_csv(p["stat"]),
            messages=parse_message_trace(msg_log),
            message_log=msg_log,
            error_log=read(p["err"]),
            screen=read(p["screen"]),
            stdout=read(p["stdout"]),
            stderr=read(p["stderr"]),
            workdir=self.workdir or Path("."),
        )
        if rc is not None:
            self._result = result
        return result

    # -- lifecycle (async) ---------------------------------------------------

    async def astart(self) -> Self:
        """Async :meth:`start` (spawning is quick; kept for symmetry)."""
        return self.start()

    async def await_result(self, timeout: float | None = None) -> SippResult:
        """Async :meth:`wait`: polls the process every 20 ms."""
        assert self._proc is not None, "start() first"
        end = self._deadline if timeout is None else time.monotonic() + timeout
        while self._proc.poll() is None:
            if time.monotonic() > end:
                self._timed_out = True
                self.kill()
                break
            await asyncio.sleep(0.02)
        return self._collect()

    async def astop(self, grace_s: float = 3.0) -> SippResult:
        """Async :meth:`stop`."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGUSR1)
            end = time.monotonic() + grace_s
            while self._proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.02)
            self.kill()
        return await self.await_result()


# ---------------------------------------------------------------------------
# convenience constructors


def uas(scenario: str | Path = "uas_answer", /, **options: Any) -> Sipp:
    """A carrier-side SIPp (no remote); ``start()`` it, then ``wait_ready()``.

    ``options`` are :class:`Sipp` fields (``pause_ms``, ``rtp_echo``, ...).
    """
    return Sipp(scenario=scenario, **options)


def uac(target: str, scenario: str | Path = "uac_call", /, **options: Any) -> Sipp:
    """A caller-side SIPp dialling ``target`` (``host:port``)."""
    return Sipp(scenario=scenario, remote=target, **options)


def proxy_auth_uas(
    *,
    user: str,
    password: str,
    request_uris: Sequence[str] | None = None,
    service: str = "service",
    realm: str = DEFAULT_KEYS["auth_realm"],
    nonce: str = DEFAULT_KEYS["auth_nonce"],
    port: int | None = None,
    workdir: Path | None = None,
    keys: Mapping[str, str] | None = None,
    **options: Any,
) -> Sipp:
    """A ``uas_auth_407`` SIPp that accepts only ``user``/``password``.

    Why: the 407 check cannot use SIPp's ``verifyauth`` (it ignores
    ``Proxy-Authorization``), so the valid digest responses are precomputed
    here, one per URI the caller may put in the digest ``uri=``, and
    injected as ``proxy_auth.csv``.  Always accepted: the Request-URI
    ``sip:{service}@127.0.0.1:{port}`` and ``sip:127.0.0.1:{port}`` (SIPp's
    own UAC uses the latter); add what Trunkline will send (e.g.
    ``sip:+15551234@127.0.0.1:{port}``) via ``request_uris``.  The digest
    covers the URI, so a caller using any other URI gets a 403.
    """
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="sipp-407-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = free_udp_port()
    uris = [
        f"sip:{service}@{LOOPBACK}:{port}",  # the Request-URI (RFC 3261 22.4)
        f"sip:{LOOPBACK}:{port}",  # what SIPp's own [authentication] puts in uri=
        *(request_uris or ()),
    ]
    rows = [
        digest_response(username=user, realm=realm, password=password, method="INVITE", uri=u, nonce=nonce)
        for u in uris
    ]
    inf = workdir / "proxy_auth.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{r};{u}\n" for r, u in zip(rows, uris, strict=True)))
    sipp = Sipp(
        scenario="uas_auth_407",
        port=port,
        workdir=workdir,
        inject_files=[inf],
        inf_index=[("proxy_auth.csv", 0)],
        keys={**(keys or {}), "auth_realm": realm, "auth_nonce": nonce},
        **options,
    )
    sipp._own_workdir = True
    return sipp
