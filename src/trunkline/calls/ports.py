"""What the call domain needs from the telephony side, stated as protocols.

The domain says "ring this number on that trunk", "let the far end hear music on hold", "join these
two legs"; an adapter (``trunkline.telephony``) does it with SIP and RTP. Keeping the seam here lets
the domain be tested without sockets and lets a second adapter (inbound legs, WebRTC) plug in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from trunkline.config import TrunkConfig


@dataclass(frozen=True)
class Silence:
    pass


@dataclass(frozen=True)
class MusicOnHold:
    pass


@dataclass(frozen=True)
class Playback:
    """A WAV file by absolute path or ``file://`` URL, or an http(s) URL to fetch it from."""

    source: str


@dataclass(frozen=True)
class Announcement:
    """A bucket's announcement: a configured file, or a short built-in tone when none is set."""

    source: str = ""


AudioSpec = Silence | MusicOnHold | Playback | Announcement


@dataclass(frozen=True)
class AgentSpec:
    """Which agent a call's AI stream goes to: ``kind`` is ``websocket``, ``quic`` or ``client`` (the
    SDK process named by ``client_id`` streams the audio itself, PROTOCOL.md §6 Audio)."""

    kind: str
    url: str = ""
    dialect: str = "twilio"
    sample_rate: int = 8000
    agent_id: str = ""
    client_id: str = ""
    auto_barge_in: bool = False
    barge_in_patience_ms: int = 0


@dataclass(frozen=True)
class StreamInfo:
    """What the agent is told about the call."""

    call_sid: str
    call_from: str
    to: str
    trunk_id: str
    tenant_id: str


@dataclass(frozen=True)
class MediaStats:
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_sent: int = 0
    jitter_ms: float = 0.0
    estimated_mos: float = 0.0


class LegEvents(Protocol):
    """How a leg reports to its call. Each is called on the event loop, in the order things happen;
    ``leg_closed`` comes exactly once, last."""

    def leg_ringing(self) -> None: ...

    def leg_early_media(self) -> None:
        """The far end's audio flows before the answer (a 183 with SDP): ringback, announcements."""

    def leg_answered(self, codec: str) -> None: ...

    def leg_failed(self, sip_status: int, reason: str) -> None: ...

    def leg_remote_hangup(self) -> None: ...

    def leg_dtmf(self, digit: str) -> None: ...

    def leg_playback_finished(self) -> None: ...

    def agent_ended(self, reason: str, failed: bool) -> None:
        """The agent hung up or closed its connection (``failed``: it could not be reached)."""

    def agent_transfer(self, to: str) -> None:
        """The agent asked to transfer the call to ``to`` (as it sent it, not yet validated)."""

    def leg_transfer_result(self, succeeded: bool, detail: str) -> None:
        """How the :meth:`Leg.transfer` in progress ended; ``detail`` says why, for the log."""

    def leg_hold_changed(self, held: bool) -> None:
        """The far end accepted being held (``True``) or resumed (``False``)."""

    def leg_expired(self, reason: str) -> None:
        """The dialog is up but the far end is not (``reason`` says how that shows, e.g. no media):
        the call should end."""

    def leg_closed(self) -> None: ...


class Leg(Protocol):
    def hangup(self) -> None:
        """CANCEL while ringing, BYE once answered; idempotent."""

    def play(self, audio: AudioSpec) -> None:
        """What the far end hears from now on. A finished non-looping ``Playback``/``Announcement``
        reports ``leg_playback_finished``."""

    def bridge(self, other: "Leg") -> None:
        """Both far ends hear each other until :meth:`unbridge` on either leg."""

    def unbridge(self) -> None: ...

    def connect_agent(self, spec: AgentSpec, info: StreamInfo) -> None:
        """Bridge the call's audio both ways to the agent; hold music plays while connecting."""

    def disconnect_agent(self) -> None: ...

    def listen(self, consumer: "Callable[[bytes | None], None] | None") -> None:
        """Hand the far end's audio to ``consumer``: one 20 ms frame of 8 kHz PCM16 per media tick
        (None for a gap). While bridged, the bridge has the audio."""

    def media_stats(self) -> MediaStats: ...

    def transfer(self, to: str) -> None:
        """Ask the far end to call ``to`` (E.164 or a SIP URI) instead of us: SIP REFER. The call
        goes on meanwhile; the outcome comes once, as ``leg_transfer_result``."""

    def set_hold(self, held: bool) -> None:
        """Hold the far end (it stops sending; a bridged partner hears music on hold instead) or
        resume it; ``leg_hold_changed`` follows when the far end has agreed."""

    def set_mute(self, muted: bool, wire: bool) -> None:
        """Stop (or resume) sending audio to the far end; ``wire`` also tells it so in SDP. Unmuting
        undoes a wire mute too."""

    def send_dtmf(self, digit: str, mode: str, duration_ms: int) -> None:
        """Send one key press: ``rfc2833`` (RFC 4733 events), ``info`` (SIP INFO dtmf-relay) or
        ``inband`` (tones mixed into what the far end hears)."""


class Telephony(Protocol):
    def place_call(self, trunk: TrunkConfig, to: str, call_from: str, events: LegEvents) -> Leg:
        """Start an outbound leg; returns at once, progress comes through ``events``."""

    def unplayable(self, source: str) -> str | None:
        """Why a :class:`Playback` of ``source`` could not play, when that shows without fetching
        it (a local file that is not there); None when it may well play."""


class Timer(Protocol):
    def cancel(self) -> None: ...


Scheduler = Callable[[float, Callable[[], None]], Timer]
