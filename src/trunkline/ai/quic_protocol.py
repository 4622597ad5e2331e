"""The QUIC AI bridge wire protocol of PROTOCOL.md §7, as pure code: no sockets, no clock, no loop.

Keeping the bytes apart from the I/O (as aioquic itself does) lets every rule below be unit-tested
and lets the reference agent in ``examples/quic_agent`` speak exactly the same codec as the gateway.

Session
    The gateway opens one session per agent endpoint and multiplexes every call to that endpoint on
    it: one bidirectional *control stream* of newline-delimited JSON, and QUIC *datagrams* for audio.
    Over WebTransport (``https://``, or ``quic://`` which means the same thing) the session is an
    extended CONNECT and the control stream is the first bidirectional WebTransport stream the gateway
    opens; datagrams are HTTP/3 datagrams on the session.

Control lines (UTF-8 JSON objects, one per line, ``\\n``-terminated, at most 64 KiB)
    Every message has ``"type"`` and an integer ``"call_id"``; unknown extra keys are ignored so
    either side can grow. Gateway to agent:

    - ``{"type":"job_assign","call_id":N,"call_sid":..,"stream_id":..,"sample_rate":16000,"from":..,
      "to":..,"trunk_id":..,"tenant_id":..,"agent_id":..,"custom_parameters":{str: str}}``
      — a new call; audio for ``N`` follows on datagrams.
    - ``{"type":"playout","call_id":N,"mark":"name"}`` — all audio the agent sent before its
      ``flush`` with that mark has been played to the caller.
    - ``{"type":"clear","call_id":N,"reason":"barge_in"}`` — the caller talked over the agent and
      the gateway already dropped its queued agent audio; the agent should stop its current turn.
    - ``{"type":"dtmf","call_id":N,"digit":"5"}`` — the caller pressed a key (one digit per line).
    - ``{"type":"shutdown","call_id":N}`` — the call ended; the agent must forget ``N``, which
      the gateway may reuse for a later call.

    Agent to gateway (each becomes one :mod:`trunkline.ai.events` event):

    - ``{"type":"flush","call_id":N,"mark":"name"}`` → :class:`AgentMark` — the agent's turn so
      far is complete; echo ``playout`` once it has been heard. ``mark`` is optional: a flush
      without one asks for no acknowledgement and produces no event.
    - ``{"type":"clear","call_id":N}`` → :class:`AgentClear`.
    - ``{"type":"shutdown","call_id":N}`` → :class:`AgentHangup` (the agent ends the call).
    - ``{"type":"transfer","call_id":N,"to":"..."}`` → :class:`AgentTransfer`.
    - ``{"type":"dtmf","call_id":N,"digits":"12#"}`` → :class:`AgentDtmf`.

Audio datagrams (both directions)
    A 6-byte header ``!BBHH`` — ``version`` = 1, ``type`` = 1 (audio), ``call_id``, ``seq`` —
    then exactly one 20 ms frame of mono PCM16 little-endian at the session's ``sample_rate``
    (640 bytes at the default 16 kHz). A datagram of any other size, version or type is dropped.
    The gateway resamples caller audio from 8 kHz to ``sample_rate`` and agent audio back to 8 kHz.
    ``seq`` counts each direction of each call separately from 0 and wraps at 2**16; since
    datagrams may be reordered, a receiver drops one that is not newer than the newest it accepted
    (serial-number arithmetic, RFC 1982), because playing it late would scramble speech. Gaps are
    not filled: pacing and silence are the bridge's business. Datagrams are not ordered with the
    control stream either, so a call's first frames may reach the agent before its ``job_assign``
    (an agent may drop them), and an agent's last frames may arrive after its ``flush``. Events
    are delivered in arrival order, so the mark covers the audio that arrived before it; an agent
    should flush only after sending its turn's last frame and accept that a straggler may follow.

Call ids
    The gateway allocates ``call_id`` per call, round-robin over the free values of the u16 space,
    and reuses one only after its ``shutdown``. Round-robin rather than lowest-free keeps a stray
    late datagram of an ended call from landing on the very next call.

Sample rates
    8, 12, 16 and 24 kHz. 48 kHz is not offered: its 20 ms frame (1920 bytes) does not fit in one
    QUIC packet, and datagrams cannot be fragmented.

Anything malformed from the agent raises :class:`AgentProtocolError`; the I/O edge logs it and
drops that one line or datagram, and the session and its other calls go on.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trunkline.ai.events import (
    AgentAudio,
    AgentClear,
    AgentDtmf,
    AgentEvent,
    AgentHangup,
    AgentMark,
    AgentProtocolError,
    AgentTransfer,
    CallInfo,
)
from trunkline.media.g711 import Resampler

PROTOCOL_VERSION = 1
DATAGRAM_AUDIO = 1
HEADER = struct.Struct("!BBHH")
FRAME_MS = 20
GATEWAY_RATE = 8000
DEFAULT_SAMPLE_RATE = 16000
SUPPORTED_SAMPLE_RATES = (8000, 12000, 16000, 24000)
MAX_CONTROL_LINE = 64 * 1024
CALL_ID_SPACE = 1 << 16
_SEQ_MASK = 0xFFFF
_SEQ_HALF = 1 << 15


def frame_bytes(sample_rate: int) -> int:
    """Bytes of one 20 ms mono PCM16 frame at ``sample_rate``: the exact datagram payload size."""
    if sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise ValueError(f"sample rate {sample_rate} not one of {SUPPORTED_SAMPLE_RATES}")
    return sample_rate * FRAME_MS // 1000 * 2


# --- datagrams -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioDatagram:
    call_id: int
    seq: int
    pcm: bytes


def pack_audio(call_id: int, seq: int, pcm: bytes) -> bytes:
    return HEADER.pack(PROTOCOL_VERSION, DATAGRAM_AUDIO, call_id, seq) + pcm


def unpack_audio(data: bytes, sample_rate: int) -> AudioDatagram:
    """Parse one datagram, insisting on exactly one 20 ms frame so a sender bug shows at once."""
    if len(data) < HEADER.size:
        raise AgentProtocolError(f"datagram of {len(data)} bytes is shorter than the header")
    version, kind, call_id, seq = HEADER.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise AgentProtocolError(f"datagram version {version}, expected {PROTOCOL_VERSION}")
    if kind != DATAGRAM_AUDIO:
        raise AgentProtocolError(f"datagram type {kind} is not audio")
    size = len(data) - HEADER.size
    if size != frame_bytes(sample_rate):
        raise AgentProtocolError(f"audio payload of {size} bytes, expected {frame_bytes(sample_rate)}")
    return AudioDatagram(call_id, seq, data[HEADER.size :])


def seq_newer(seq: int, than: int) -> bool:
    """RFC 1982 comparison on u16: is ``seq`` after ``than``, allowing for wrap-around?"""
    return 0 < ((seq - than) & _SEQ_MASK) < _SEQ_HALF


class SeqCounter:
    """The outgoing ``seq`` of one direction of one call: 0, 1, ..., 65535, 0, ..."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def next(self) -> int:
        seq = self._next
        self._next = (seq + 1) & _SEQ_MASK
        return seq


class SeqWindow:
    """Accepts an incoming ``seq`` only if it is newer than every one accepted before."""

    __slots__ = ("_newest",)

    def __init__(self) -> None:
        self._newest: int | None = None

    def accept(self, seq: int) -> bool:
        if self._newest is not None and not seq_newer(seq, self._newest):
            return False
        self._newest = seq
        return True


class CallIdAllocator:
    """Round-robin over free u16 call ids (see the module docstring for why not lowest-free)."""

    __slots__ = ("_in_use", "_next")

    def __init__(self) -> None:
        self._in_use: set[int] = set()
        self._next = 0

    def allocate(self) -> int:
        if len(self._in_use) >= CALL_ID_SPACE:
            raise RuntimeError("all 65536 call ids are in use on this session")
        call_id = self._next
        while call_id in self._in_use:
            call_id = (call_id + 1) % CALL_ID_SPACE
        self._in_use.add(call_id)
        self._next = (call_id + 1) % CALL_ID_SPACE
        return call_id

    def release(self, call_id: int) -> None:
        self._in_use.discard(call_id)


# --- control lines -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobAssign:
    call_id: int
    call_sid: str
    stream_id: str
    sample_rate: int
    call_from: str
    to: str
    trunk_id: str
    tenant_id: str
    agent_id: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Playout:
    call_id: int
    mark: str


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The gateway's ``clear``: it already emptied the caller-bound queue because the caller spoke."""

    call_id: int
    reason: str = "barge_in"


@dataclass(frozen=True, slots=True)
class CallerDtmf:
    call_id: int
    digit: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The gateway's ``shutdown``."""

    call_id: int


GatewayMessage = JobAssign | Playout | BargeIn | CallerDtmf | CallEnded


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """One agent control line or audio datagram; ``event`` is None for a flush without a mark."""

    call_id: int
    event: AgentEvent | None


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def encode_gateway_message(msg: GatewayMessage) -> bytes:
    if isinstance(msg, JobAssign):
        return _line({
            "type": "job_assign", "call_id": msg.call_id, "call_sid": msg.call_sid,
            "stream_id": msg.stream_id, "sample_rate": msg.sample_rate, "from": msg.call_from,
            "to": msg.to, "trunk_id": msg.trunk_id, "tenant_id": msg.tenant_id,
            "agent_id": msg.agent_id, "custom_parameters": dict(msg.custom_parameters),
        })
    if isinstance(msg, Playout):
        return _line({"type": "playout", "call_id": msg.call_id, "mark": msg.mark})
    if isinstance(msg, BargeIn):
        return _line({"type": "clear", "call_id": msg.call_id, "reason": msg.reason})
    if isinstance(msg, CallerDtmf):
        return _line({"type": "dtmf", "call_id": msg.call_id, "digit": msg.digit})
    return _line({"type": "shutdown", "call_id": msg.call_id})


def encode_agent_message(call_id: int, event: AgentEvent | None) -> bytes:
    """The agent side's encoder (used by the reference agent); ``None`` is a flush without a mark."""
    if event is None:
        return _line({"type": "flush", "call_id": call_id})
    if isinstance(event, AgentMark):
        return _line({"type": "flush", "call_id": call_id, "mark": event.name})
    if isinstance(event, AgentClear):
        return _line({"type": "clear", "call_id": call_id})
    if isinstance(event, AgentHangup):
        return _line({"type": "shutdown", "call_id": call_id})
    if isinstance(event, AgentTransfer):
        return _line({"type": "transfer", "call_id": call_id, "to": event.to})
    if isinstance(event, AgentDtmf):
        return _line({"type": "dtmf", "call_id": call_id, "digits": event.digits})
    raise ValueError("agent audio travels in datagrams, not on the control stream")


def _object(line: bytes) -> tuple[str, int, dict[str, Any]]:
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AgentProtocolError(f"control line is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise AgentProtocolError("control line is not a JSON object")
    kind, call_id = obj.get("type"), obj.get("call_id")
    if not isinstance(kind, str):
        raise AgentProtocolError("control message without a string 'type'")
    if type(call_id) is not int or not 0 <= call_id < CALL_ID_SPACE:
        raise AgentProtocolError(f"{kind}: 'call_id' must be an integer 0..65535")
    return kind, call_id, obj


def _required(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise AgentProtocolError(f"{obj['type']}: '{key}' must be a string")
    return value


def _optional(obj: dict[str, Any], key: str) -> str | None:
    return None if obj.get(key) is None else _required(obj, key)


def parse_agent_message(line: bytes) -> AgentMessage:
    """Parse one agent control line (without or with its newline) into the event it means."""
    kind, call_id, obj = _object(line)
    event: AgentEvent | None
    if kind == "flush":
        mark = _optional(obj, "mark")
        event = None if mark is None else AgentMark(mark)
    elif kind == "clear":
        event = AgentClear()
    elif kind == "shutdown":
        event = AgentHangup()
    elif kind == "transfer":
        to = _required(obj, "to")
        if not to:
            raise AgentProtocolError("transfer: 'to' is empty")
        event = AgentTransfer(to)
    elif kind == "dtmf":
        digits = _required(obj, "digits")
        if not digits:
            raise AgentProtocolError("dtmf: 'digits' is empty")
        event = AgentDtmf(digits)
    else:
        raise AgentProtocolError(f"unknown agent message type {kind!r}")
    return AgentMessage(call_id, event)


def parse_gateway_message(line: bytes) -> GatewayMessage:
    """The agent side's parser (used by the reference agent)."""
    kind, call_id, obj = _object(line)
    if kind == "job_assign":
        rate = obj.get("sample_rate")
        if rate not in SUPPORTED_SAMPLE_RATES:
            raise AgentProtocolError(f"job_assign: unsupported sample_rate {rate!r}")
        params = obj.get("custom_parameters", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise AgentProtocolError("job_assign: 'custom_parameters' must map strings to strings")
        return JobAssign(
            call_id, _required(obj, "call_sid"), _required(obj, "stream_id"), rate,
            _required(obj, "from"), _required(obj, "to"), _required(obj, "trunk_id"),
            _required(obj, "tenant_id"), _required(obj, "agent_id"), params,
        )
    if kind == "playout":
        return Playout(call_id, _required(obj, "mark"))
    if kind == "clear":
        return BargeIn(call_id, _optional(obj, "reason") or "barge_in")
    if kind == "dtmf":
        return CallerDtmf(call_id, _required(obj, "digit"))
    if kind == "shutdown":
        return CallEnded(call_id)
    raise AgentProtocolError(f"unknown gateway message type {kind!r}")


class LineSplitter:
    """Cuts a byte stream into lines, refusing to buffer one longer than ``MAX_CONTROL_LINE``.

    ``feed`` returns complete lines (without ``\\n``, blank ones skipped) and, in place of a line
    that grew too long, an :class:`AgentProtocolError`; the rest of that line is then skipped, so
    one runaway message costs that message and not the session.
    """

    __slots__ = ("_buf", "_skipping", "limit")

    def __init__(self, limit: int = MAX_CONTROL_LINE) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | AgentProtocolError]:
        out: list[bytes | AgentProtocolError] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            elif len(self._buf) + end - start > self.limit:
                out.append(AgentProtocolError(f"control line longer than {self.limit} bytes"))
            else:
                self._buf += data[start:end]
                if self._buf.strip():
                    out.append(bytes(self._buf))
            self._buf.clear()
            start = end + 1
        if not self._skipping:
            self._buf += data[start:]
            if len(self._buf) > self.limit:
                out.append(AgentProtocolError(f"control line longer than {self.limit} bytes"))
                self._buf.clear()
                self._skipping = True
        return out


# --- the gateway's side of a session --------------------------------------------------------------


class _Call:
    __slots__ = ("seq_out", "seq_in", "up", "down", "pending", "primed")

    def __init__(self, sample_rate: int) -> None:
        self.seq_out = SeqCounter()
        self.seq_in = SeqWindow()
        self.up = Resampler(GATEWAY_RATE, sample_rate)
        self.down = Resampler(sample_rate, GATEWAY_RATE)
        self.pending = bytearray()  # resampled caller audio short of a whole frame
        self.primed = False  # the resampler's first (short) output has gone out


class GatewaySession:
    """The gateway end of one §7 session, sans I/O: it turns calls into bytes and bytes into events.

    Methods that send return what to put on the wire (control bytes for the control stream, a list
    of datagrams); ``receive_*`` return what the agent said. The caller owns the transport.
    """

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self.frame_bytes = frame_bytes(sample_rate)
        self._ids = CallIdAllocator()
        self._calls: dict[int, _Call] = {}
        self._lines = LineSplitter()

    def open_call(self, info: CallInfo, custom_parameters: Mapping[str, str]) -> tuple[int, bytes]:
        """Allocate a call id and return it with the ``job_assign`` line."""
        call_id = self._ids.allocate()
        self._calls[call_id] = _Call(self.sample_rate)
        return call_id, encode_gateway_message(JobAssign(
            call_id, info.call_sid, info.stream_id, self.sample_rate, info.call_from, info.to,
            info.trunk_id, info.tenant_id, info.agent_id, dict(custom_parameters),
        ))

    def end_call(self, call_id: int) -> bytes:
        """Forget the call, free its id, and return the ``shutdown`` line."""
        self._calls.pop(call_id, None)
        self._ids.release(call_id)
        return encode_gateway_message(CallEnded(call_id))

    def caller_audio(self, call_id: int, pcm8k: bytes) -> list[bytes]:
        """Resample caller audio and cut it into whole-frame datagrams.

        The resampler's first output is short by its filter delay (a sample or two); it is padded with
        silence in front, so each 20 ms of input is one datagram at once. Otherwise that shortfall
        would sit in ``pending`` and hold back a frame's worth of every later datagram for the whole
        call. Input that is not whole frames leaves its remainder waiting for the next call.
        """
        call = self._calls[call_id]
        size = self.frame_bytes
        audio = call.up.process(pcm8k)
        if not call.primed:
            call.primed = True
            audio = bytes(-len(audio) % size) + audio
        call.pending += audio
        out: list[bytes] = []
        while len(call.pending) >= size:
            out.append(pack_audio(call_id, call.seq_out.next(), bytes(call.pending[:size])))
            del call.pending[:size]
        return out

    def receive_datagram(self, data: bytes) -> AgentMessage | None:
        """Agent audio as 8 kHz :class:`AgentAudio`, or None for a late or duplicate datagram or one
        for a call that is not open (e.g. it ended while the datagram was in flight)."""
        datagram = unpack_audio(data, self.sample_rate)
        call = self._calls.get(datagram.call_id)
        if call is None or not call.seq_in.accept(datagram.seq):
            return None
        return AgentMessage(datagram.call_id, AgentAudio(call.down.process(datagram.pcm)))

    def receive_control(self, data: bytes) -> list[AgentMessage | AgentProtocolError]:
        """Parse whatever complete lines ``data`` finishes; errors come back in line order."""
        out: list[AgentMessage | AgentProtocolError] = []
        for line in self._lines.feed(data):
            if isinstance(line, AgentProtocolError):
                out.append(line)
                continue
            try:
                out.append(parse_agent_message(line))
            except AgentProtocolError as exc:
                out.append(exc)
        return out
