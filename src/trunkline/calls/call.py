"""One call: its state machine, its current dialplan app, and the events it emits.

A call is driven from two sides: the API (originate, terminate, execute a dialplan action) through
:class:`~trunkline.calls.service.CallService`, and its leg (ringing, answered, failed, hung up)
through the :class:`~trunkline.calls.ports.LegEvents` methods below. Every transition publishes its
CallEvent at once, so a call's events are in order by construction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from trunkline.calls import q850
from trunkline.calls.destinations import is_valid_destination
from trunkline.calls.errors import CallError
from trunkline.calls.events import CallEvent
from trunkline.calls.ports import Announcement, Leg, MediaStats, MusicOnHold, Playback, Silence, StreamInfo, Timer
from trunkline.config import TrunkConfig
from trunkline.enums import DialplanAction, ErrorCode, EventType

if TYPE_CHECKING:
    from trunkline.calls.service import CallService

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "default"


class CallState(Enum):
    INITIATED = "INITIATED"
    RINGING = "RINGING"
    ANSWERED = "ANSWERED"
    ENDED = "ENDED"


@dataclass
class CallRequest:
    """What the caller of Originate asked for, in domain terms."""

    trunk: TrunkConfig
    to: str
    call_from: str = ""
    default_app: DialplanAction = DialplanAction.PARK
    default_app_args: str = ""
    max_duration_ms: int = 0
    client_id: str = ""
    ai_websocket_url: str = ""
    ai_quic_url: str = ""
    auto_barge_in: bool = False
    barge_in_patience_ms: int = 0
    agent_config_key: str = ""  # the [[agents]] entry for AI streams whose app args say nothing else
    traceparent: str = ""


@dataclass
class App:
    action: DialplanAction
    args: str = ""


@dataclass
class _Ending:
    """Why the call is ending, decided by whoever ends it first."""

    status: str
    cause: int


class Call:
    def __init__(self, service: "CallService", sid: str, tenant_id: str, request: CallRequest) -> None:
        self.service = service
        self.sid = sid
        self.tenant_id = tenant_id
        self.request = request
        self.state = CallState.INITIATED
        self.start_ms = service.now_ms()
        self.answer_ms = 0
        self.end_ms = 0
        self.codec = ""
        self.app = App(request.default_app, request.default_app_args)
        self.bucket: str | None = None
        self.last_bucket = DEFAULT_BUCKET  # where this call returns to when a bridge ends
        self.partner: Call | None = None
        self.resume_app: App | None = None  # what a mid-call PLAYBACK returns to
        self.agent_connected = False
        self.held = False  # the far end agreed to be on hold
        self.transferring_to = ""  # a transfer in progress
        self.transferred_to = ""  # where a successful transfer sent the far end
        self.final_status = ""
        self.final_cause = 0
        self.leg: Leg | None = None
        self._ending: _Ending | None = None
        self._timers: list[Timer] = []
        self.final_stats = MediaStats()

    # --- reporting ----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self.final_status if self.state is CallState.ENDED else self.state.value

    def _emit(self, event_type: EventType, status: str, **extra: object) -> None:
        self.service.events.publish(CallEvent(
            call_sid=self.sid, event_type=event_type, status=status, tenant_id=self.tenant_id,
            client_id=self.request.client_id, trunk_id=self.request.trunk.id,
            start_timestamp_ms=self.start_ms, answer_timestamp_ms=self.answer_ms, codec=self.codec,
            timestamp_ms=self.service.now_ms(), **extra,
        ))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, leg: Leg) -> None:
        self.leg = leg
        self._emit(EventType.CHANNEL_CREATE, CallState.INITIATED.value)
        self._timers.append(self.service.schedule(self.request.trunk.ring_timeout_s, self._ring_timeout))

    def terminate(self) -> None:
        """API hangup: CANCEL while ringing (CANCELED), BYE once answered (COMPLETED)."""
        if self.state is CallState.ANSWERED:
            self._end_with("COMPLETED", q850.NORMAL_CLEARING)
        else:
            self._end_with("CANCELED", q850.NORMAL_CLEARING)

    def _ring_timeout(self) -> None:
        if self.state in (CallState.INITIATED, CallState.RINGING):
            self._end_with("NO_ANSWER", q850.NO_ANSWER)

    def _max_duration(self) -> None:
        if self.state is CallState.ANSWERED:
            self._end_with("TIMEOUT", q850.RECOVERY_ON_TIMER_EXPIRY)

    def _end_with(self, status: str, cause: int) -> None:
        if self._ending is None and self.state is not CallState.ENDED:
            self._ending = _Ending(status, cause)
        if self.leg is not None:
            self.leg.hangup()

    # --- LegEvents ----------------------------------------------------------------------------

    def leg_ringing(self) -> None:
        if self.state is CallState.INITIATED:
            self.state = CallState.RINGING
            self._emit(EventType.CHANNEL_CREATE, CallState.RINGING.value)

    def leg_early_media(self) -> None:
        """An AI call's agent connects at the first early media and hears it while the call is
        RINGING (what answering-machine detection needs); it speaks from the answer on."""
        if self.state in (CallState.INITIATED, CallState.RINGING) and self._ending is None \
                and not self.agent_connected and self.app.action is DialplanAction.AI_BIDIRECTIONAL_STREAM:
            self._connect_agent(self.app)

    def leg_answered(self, codec: str) -> None:
        if self.state not in (CallState.INITIATED, CallState.RINGING):
            return
        self._cancel_timers()
        self.state = CallState.ANSWERED
        self.answer_ms = self.service.now_ms()
        self.codec = codec
        self._emit(EventType.CHANNEL_ANSWER, CallState.ANSWERED.value)
        if self._ending is not None:  # terminated while the 200 OK was on its way
            self.leg.hangup()
            return
        max_ms = self.request.max_duration_ms or self.request.trunk.max_duration_s * 1000
        self._timers.append(self.service.schedule(max_ms / 1000, self._max_duration))
        if not self.agent_connected:  # else it is already there, since the early media
            self.enter(self.app)

    def leg_failed(self, sip_status: int, reason: str) -> None:
        if self._ending is None:
            self._ending = _Ending(q850.hangup_status_for_sip_status(sip_status), q850.cause_for_sip_status(sip_status))
        log.info("call %s failed: %d %s", self.sid, sip_status, reason)

    def leg_remote_hangup(self) -> None:
        if self._ending is None:
            self._ending = _Ending("COMPLETED", q850.NORMAL_CLEARING)

    def leg_dtmf(self, digit: str) -> None:
        log.debug("call %s dtmf %s", self.sid, digit)

    def leg_playback_finished(self) -> None:
        if self.state is not CallState.ANSWERED:
            return
        if self.resume_app is not None:  # a mid-call PLAYBACK or announcement: back to what it interrupted
            app, self.resume_app = self.resume_app, None
            self.enter(app)
        elif self.app.action is DialplanAction.PLAYBACK:  # PLAYBACK as the call's app ends the call
            self._end_with("COMPLETED", q850.NORMAL_CLEARING)

    def agent_ended(self, reason: str, failed: bool) -> None:
        """An AI call never stays up silent: the agent leaving ends the call."""
        log.info("call %s: agent ended (%s)", self.sid, reason)
        if failed:
            self._end_with("FAILED", q850.TEMPORARY_FAILURE)
        else:
            self._end_with("COMPLETED", q850.NORMAL_CLEARING)

    def agent_transfer(self, to: str) -> None:
        """The agent's ``transfer`` goes the way of the TRANSFER verb; a refusal can only be logged."""
        try:
            self.transfer(to)
        except CallError as exc:
            log.warning("call %s: the agent's transfer was refused: %s", self.sid, exc.message)

    def leg_transfer_result(self, succeeded: bool, detail: str) -> None:
        to, self.transferring_to = self.transferring_to, ""
        if not succeeded:
            log.warning("call %s: transfer to %s failed (%s); the call stays up", self.sid, to, detail)
            return
        log.info("call %s: transferred to %s (%s)", self.sid, to, detail)
        self.transferred_to = to
        self._end_with("COMPLETED", q850.NORMAL_CLEARING)

    def leg_expired(self, reason: str) -> None:
        """A far end that vanished without a BYE: hang up FAILED/102 (PROTOCOL.md §6). Before the
        answer the ring timeout decides instead."""
        if self.state is CallState.ANSWERED:
            log.warning("call %s: %s; hanging up", self.sid, reason)
            self._end_with("FAILED", q850.RECOVERY_ON_TIMER_EXPIRY)

    def leg_hold_changed(self, held: bool) -> None:
        if held == self.held or self.state is not CallState.ANSWERED:
            return
        self.held = held
        self._emit(EventType.CHANNEL_HOLD if held else EventType.CHANNEL_RESUME, self.status)

    def leg_closed(self) -> None:
        if self.state is CallState.ENDED:
            return
        self._cancel_timers()
        self._leave_app()
        ending = self._ending or _Ending("FAILED" if self.state is not CallState.ANSWERED else "COMPLETED",
                                         q850.NORMAL_CLEARING)
        self.state = CallState.ENDED
        self.end_ms = self.service.now_ms()
        self.final_status, self.final_cause = ending.status, ending.cause
        stats = self.final_stats = self.leg.media_stats() if self.leg is not None else MediaStats()
        self.leg = None  # the leg still points at us (its events) until its dialog is gone: no cycle
        duration = (self.end_ms - self.answer_ms) // 1000 if self.answer_ms else 0
        self._emit(
            EventType.CHANNEL_HANGUP_COMPLETE, ending.status, q850_cause=ending.cause,
            end_timestamp_ms=self.end_ms, duration_seconds=duration,
            packets_sent=stats.packets_sent, packets_received=stats.packets_received,
            packets_lost=stats.packets_lost, bytes_sent=stats.bytes_sent, jitter_ms=stats.jitter_ms,
            estimated_mos=stats.estimated_mos,
        )
        self.service.call_ended(self)

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # --- mid-call verbs (ExecuteDialplan 7-12) -------------------------------------------------

    def _answered_leg(self, verb: DialplanAction) -> Leg:
        if self.state is not CallState.ANSWERED or self.leg is None:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"{verb.name} needs an answered call; call {self.sid!r} is {self.status}")
        return self.leg

    def transfer(self, to: str) -> None:
        """Blind transfer: the far end is asked to call ``to`` while the call keeps its app. Success
        ends the call COMPLETED (the far end is someone else's now); failure leaves it as it was."""
        leg = self._answered_leg(DialplanAction.TRANSFER)
        if not is_valid_destination(to):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"TRANSFER to {to!r}: expected E.164 (+ and 8-15 digits) or a sip:/sips: URI")
        if self.transferring_to:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"call {self.sid!r} is already being transferred to {self.transferring_to!r}")
        self.transferring_to = to
        log.info("call %s: transferring to %s", self.sid, to)
        leg.transfer(to)

    def set_hold(self, held: bool) -> None:
        self._answered_leg(DialplanAction.HOLD if held else DialplanAction.UNHOLD).set_hold(held)

    def set_mute(self, muted: bool, wire: bool) -> None:
        self._answered_leg(DialplanAction.MUTE if muted else DialplanAction.UNMUTE).set_mute(muted, wire)

    def send_dtmf(self, digit: str, mode: str, duration_ms: int) -> None:
        self._answered_leg(DialplanAction.SEND_DTMF).send_dtmf(digit, mode, duration_ms)

    # --- dialplan apps ------------------------------------------------------------------------

    def enter(self, app: App) -> None:
        """Switch the answered call into ``app`` (leaving whatever it was doing)."""
        assert self.leg is not None
        self._leave_app()
        self.app = app
        action = app.action
        if action is DialplanAction.HANGUP:
            self._end_with("COMPLETED", q850.NORMAL_CLEARING)
        elif action is DialplanAction.PARK:
            self.leg.play(Silence())
            self.service.park(self, app.args or DEFAULT_BUCKET)
        elif action is DialplanAction.MUSIC_ON_HOLD:
            self.leg.play(MusicOnHold())
        elif action is DialplanAction.PLAYBACK:
            self.leg.play(Playback(app.args))
        elif action is DialplanAction.UNPARK_AND_BRIDGE:
            target = self.service.parked_call(self.tenant_id, app.args)
            if target is None or target is self:
                log.warning("call %s: nothing parked as %r to bridge with; parking instead", self.sid, app.args)
                self.enter(App(DialplanAction.PARK, DEFAULT_BUCKET))
                return
            self.bridge_with(target)
        elif not (action is DialplanAction.AI_BIDIRECTIONAL_STREAM and self._connect_agent(app)):
            # ANSWER, and AI_BIDIRECTIONAL_STREAM with no agent at all: answered, left to the app.
            # Silence, not nothing: a symmetric-RTP carrier sends only once it hears us, and the NAT
            # bindings on the way need the packets too.
            self.leg.play(Silence())

    def _connect_agent(self, app: App) -> bool:
        """Connect the agent ``app`` names; False when it names none."""
        spec = self.service.agent_spec(self, app.args)
        if spec is None or self.leg is None:
            return False
        self.agent_connected = True
        self.leg.connect_agent(spec, StreamInfo(self.sid, self.request.call_from, self.request.to,
                                                self.request.trunk.id, self.tenant_id))
        return True

    def bridge_with(self, other: "Call") -> None:
        self.service.unpark(other)
        other.app = App(DialplanAction.UNPARK_AND_BRIDGE, self.sid)
        self.partner, other.partner = other, self
        assert self.leg is not None and other.leg is not None
        self.leg.bridge(other.leg)

    def play_then_resume(self, audio: Playback | Announcement) -> None:
        """Play something and come back to the current app when it ends (mid-call PLAYBACK,
        bucket announcements). A parked call stays in its bucket meanwhile."""
        if self.resume_app is None:
            self.resume_app = self.app
        if self.partner is not None:
            self._unbridge()
        assert self.leg is not None
        self.leg.play(audio)

    def _leave_app(self) -> None:
        if self.agent_connected and self.leg is not None:
            self.agent_connected = False
            self.leg.disconnect_agent()
        if self.bucket is not None:
            self.service.unpark(self)
        if self.partner is not None:
            self._unbridge()

    def _unbridge(self) -> None:
        """A bridge ends for both sides; the partner that stays returns to PARK."""
        partner, self.partner = self.partner, None
        if partner is None:
            return
        partner.partner = None
        if self.leg is not None:
            self.leg.unbridge()
        if partner.state is CallState.ANSWERED:
            partner.enter(App(DialplanAction.PARK, partner.last_bucket))
