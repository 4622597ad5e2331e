"""The call registry per tenant and the operations the API offers on it.

Everything here is tenant-scoped: another tenant's call_sid, trunk or bucket behaves exactly like
an unknown one (PROTOCOL.md §5).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from trunkline.calls.call import App, Call, CallRequest, CallState
from trunkline.calls.destinations import is_valid_destination
from trunkline.calls.errors import CallError
from trunkline.calls.events import EventHub
from trunkline.calls.ports import AgentSpec, Announcement, Playback, Scheduler, Telephony
from trunkline.calls.verbs import parse_send_dtmf, parse_wire_flag, require_no_args
from trunkline.config import AgentConfig, TrunkConfig
from trunkline.enums import DialplanAction, ErrorCode

log = logging.getLogger(__name__)

#: Ended calls remembered per tenant, for at most ENDED_CALL_MAX_AGE_S, so a repeated call_sid
#: still answers with that call's state.
ENDED_CALLS_KEPT = 10_000
ENDED_CALL_MAX_AGE_S = 3600
ORIGINATE_APPS = frozenset(a for a in DialplanAction if a <= DialplanAction.AI_BIDIRECTIONAL_STREAM)


@dataclass(slots=True)
class EndedCall:
    """What is kept of a call once it has ended: enough to answer a repeated Originate or a lookup,
    and nothing that holds its leg, media or app (a whole Call graph was ~15 KB per call)."""

    sid: str
    tenant_id: str
    trunk_id: str
    status: str
    q850_cause: int
    start_ms: int
    answer_ms: int
    end_ms: int
    packets_sent: int
    packets_received: int
    transferred_to: str

    @property
    def state(self) -> CallState:
        return CallState.ENDED

    @classmethod
    def of(cls, call: Call) -> EndedCall:
        stats = call.final_stats
        return cls(call.sid, call.tenant_id, call.request.trunk.id, call.final_status, call.final_cause,
                   call.start_ms, call.answer_ms, call.end_ms, stats.packets_sent, stats.packets_received,
                   call.transferred_to)


class CallService:
    def __init__(
        self,
        trunks: tuple[TrunkConfig, ...],
        telephony: Telephony,
        events: EventHub,
        schedule: Scheduler,
        clock: Callable[[], float] = time.time,
        announcements: dict[str, str] | None = None,
        agents: tuple[AgentConfig, ...] = (),
    ) -> None:
        self.agents = {a.id: a for a in agents}
        self.trunks = {t.id: t for t in trunks}
        self.telephony = telephony
        self.events = events
        self.schedule = schedule
        self.clock = clock
        self.announcements = announcements or {}
        self._live: dict[str, dict[str, Call]] = {}
        self._ended: dict[str, dict[str, EndedCall]] = {}  # per tenant, oldest first
        self._buckets: dict[str, dict[str, dict[str, Call]]] = {}
        self._trunk_load: dict[str, int] = {}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- originate / terminate ----------------------------------------------------------------

    def originate(self, tenant_id: str, trunk_id: str, call_sid: str = "", **fields: object) -> Call | EndedCall:
        """Validate, admit and start a call; returns at once (progress comes as events). A known
        ``call_sid`` returns that call instead of placing another."""
        if call_sid:
            existing = self.find(tenant_id, call_sid, include_ended=True)
            if existing is not None:
                return existing
        trunk = self.trunks.get(trunk_id)
        if trunk is None or trunk.tenant != tenant_id:
            raise CallError(ErrorCode.ERR_INVALID_TRUNK, f"unknown trunk {trunk_id!r}")
        request = CallRequest(trunk=trunk, **fields)  # type: ignore[arg-type]
        self._validate(request)
        if self._trunk_load.get(trunk.id, 0) >= trunk.max_concurrent:
            raise CallError(ErrorCode.ERR_RATE_LIMITED, f"trunk {trunk.id!r} is at max_concurrent={trunk.max_concurrent}")
        call = Call(self, call_sid or f"CA{uuid.uuid4().hex}", tenant_id, request)
        self._live.setdefault(tenant_id, {})[call.sid] = call
        self._trunk_load[trunk.id] = self._trunk_load.get(trunk.id, 0) + 1
        call.start(self.telephony.place_call(trunk, request.to, request.call_from, call))
        return call

    def _validate(self, request: CallRequest) -> None:
        if not is_valid_destination(request.to):
            raise CallError(ErrorCode.ERR_INVALID_DESTINATION,
                            f"to={request.to!r} is neither E.164 (+ and 8-15 digits) nor a sip:/sips: URI")
        if request.trunk.caller_ids and request.call_from not in request.trunk.caller_ids:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"call_from={request.call_from!r} is not allowed on trunk {request.trunk.id!r}")
        if request.default_app not in ORIGINATE_APPS:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED,
                            f"default_app {request.default_app.name} is a mid-call verb, not an app")
        if (request.default_app is DialplanAction.AI_BIDIRECTIONAL_STREAM and request.default_app_args
                and request.default_app_args not in self.agents and not (request.ai_websocket_url or request.ai_quic_url)):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"unknown agent {request.default_app_args!r}")
        if request.agent_config_key and request.agent_config_key not in self.agents:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"unknown agent_config_key {request.agent_config_key!r}")
        if request.max_duration_ms < 0 or request.barge_in_patience_ms < 0:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, "durations must not be negative")
        if request.default_app is DialplanAction.PLAYBACK:
            self._check_playback(request.default_app_args, "default_app_args")
        if request.ai_websocket_url and not request.ai_websocket_url.startswith(("ws://", "wss://")):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, "ai_websocket_url must be ws:// or wss://")
        if request.ai_quic_url and not request.ai_quic_url.startswith(("https://", "quic://")):
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, "ai_quic_url must be https:// or quic://")

    def _check_playback(self, source: str, field: str) -> None:
        """Refuse a PLAYBACK that cannot play now rather than answer a call only to end it at once."""
        if not source:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"PLAYBACK needs {field}: a .wav path or URL")
        problem = self.telephony.unplayable(source)
        if problem is not None:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"PLAYBACK: {problem}")

    def terminate(self, tenant_id: str, call_sid: str) -> Call:
        call = self._require(tenant_id, call_sid)
        call.terminate()
        return call

    def call_ended(self, call: Call) -> None:
        self._live.get(call.tenant_id, {}).pop(call.sid, None)
        self._trunk_load[call.request.trunk.id] -= 1
        ended = self._ended.setdefault(call.tenant_id, {})
        ended[call.sid] = EndedCall.of(call)
        if len(ended) > ENDED_CALLS_KEPT:
            del ended[next(iter(ended))]
        self._forget_old(ended)

    def _forget_old(self, ended: dict[str, EndedCall]) -> None:
        horizon = self.now_ms() - ENDED_CALL_MAX_AGE_S * 1000
        while ended:
            oldest = next(iter(ended.values()))
            if oldest.end_ms >= horizon:
                return
            del ended[oldest.sid]

    def find(self, tenant_id: str, call_sid: str, include_ended: bool = False) -> Call | EndedCall | None:
        call = self._live.get(tenant_id, {}).get(call_sid)
        if call is None and include_ended:
            ended = self._ended.get(tenant_id, {})
            self._forget_old(ended)
            return ended.get(call_sid)
        return call

    def _require(self, tenant_id: str, call_sid: str) -> Call:
        call = self._live.get(tenant_id, {}).get(call_sid)
        if call is None:
            raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"no active call {call_sid!r}")
        return call

    def active_calls(self, tenant_id: str) -> list[Call]:
        return list(self._live.get(tenant_id, {}).values())

    def agent_spec(self, call: Call, args: str) -> AgentSpec | None:
        """Where the call's AI stream goes: the request's URLs, else the configured agent named by
        ``args`` (or by the request's ``agent_config_key``), else the SDK client that placed it;
        None when there is nothing to bridge to."""
        request = call.request
        if args not in self.agents:
            args = request.agent_config_key or args
        agent = self.agents.get(args)
        common = {"agent_id": args, "client_id": request.client_id, "auto_barge_in": request.auto_barge_in,
                  "barge_in_patience_ms": request.barge_in_patience_ms}
        dialect = agent.dialect if agent else "twilio"
        rate = agent.sample_rate if agent else 8000
        if request.ai_websocket_url:
            return AgentSpec("websocket", request.ai_websocket_url, dialect, rate, **common)
        if request.ai_quic_url:
            return AgentSpec("quic", request.ai_quic_url, dialect, agent.sample_rate if agent else 16000, **common)
        if agent is not None:
            kind = "websocket" if agent.url.startswith(("ws://", "wss://")) else "quic"
            return AgentSpec(kind, agent.url, agent.dialect, agent.sample_rate, **common)
        if request.client_id:
            return AgentSpec("client", **common)
        return None

    # --- dialplan -----------------------------------------------------------------------------

    def execute_dialplan(self, tenant_id: str, call_sid: str, action: DialplanAction, args: str) -> Call:
        """Verbs 0-6 switch the call's app (or set the one it gets on answer); 7-12 act on the
        answered call (PROTOCOL.md §6)."""
        call = self._require(tenant_id, call_sid)
        if action is DialplanAction.TRANSFER:
            call.transfer(args)
            return call
        if action in (DialplanAction.MUTE, DialplanAction.UNMUTE):
            call.set_mute(action is DialplanAction.MUTE, parse_wire_flag(action, args))
            return call
        if action in (DialplanAction.HOLD, DialplanAction.UNHOLD):
            require_no_args(action, args)
            call.set_hold(action is DialplanAction.HOLD)
            return call
        if action is DialplanAction.SEND_DTMF:
            dtmf = parse_send_dtmf(args)
            call.send_dtmf(dtmf.digit, dtmf.mode, dtmf.duration_ms)
            return call
        if action is DialplanAction.PLAYBACK:
            self._check_playback(args, "app_args")
        if action is DialplanAction.UNPARK_AND_BRIDGE:
            target = self.parked_call(tenant_id, args)
            if target is None or target is call:
                raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"no parked call {args!r} to bridge with")
        if call.state is not CallState.ANSWERED:
            call.app = App(action, args)  # runs when the far end answers
        elif action is DialplanAction.PLAYBACK:
            call.play_then_resume(Playback(args))
        else:
            call.enter(App(action, args))
        return call

    # --- buckets ------------------------------------------------------------------------------

    def park(self, call: Call, bucket_id: str) -> None:
        self._buckets.setdefault(call.tenant_id, {}).setdefault(bucket_id, {})[call.sid] = call
        call.bucket = call.last_bucket = bucket_id

    def unpark(self, call: Call) -> None:
        buckets = self._buckets.get(call.tenant_id, {})
        members = buckets.get(call.bucket or "")
        if members is not None:
            members.pop(call.sid, None)
            if not members:
                del buckets[call.bucket]
        call.bucket = None

    def parked_call(self, tenant_id: str, call_sid: str) -> Call | None:
        call = self._live.get(tenant_id, {}).get(call_sid)
        return call if call is not None and call.bucket is not None else None

    def buckets(self, tenant_id: str) -> list[tuple[str, int]]:
        return [(bucket_id, len(calls)) for bucket_id, calls in sorted(self._buckets.get(tenant_id, {}).items())]

    def bucket_calls(self, tenant_id: str, bucket_id: str) -> list[str]:
        return list(self._buckets.get(tenant_id, {}).get(bucket_id, {}))

    def bucket_action(self, tenant_id: str, bucket_id: str, action: int) -> int:
        calls = list(self._buckets.get(tenant_id, {}).get(bucket_id, {}).values())
        if action == 0:
            for call in calls:
                call.terminate()
            return len(calls)
        if action == 1:
            bridged = 0
            for call in calls:
                if self.agent_spec(call, "") is not None:
                    call.enter(App(DialplanAction.AI_BIDIRECTIONAL_STREAM))
                    bridged += 1
            return bridged
        if action == 2:
            announcement = Announcement(self.announcements.get(bucket_id, ""))
            for call in calls:
                call.play_then_resume(announcement)
            return len(calls)
        raise CallError(ErrorCode.ERR_VALIDATION_FAILED, f"bucket action {action} is not 0 (hangup), 1 (unpark+bridge) or 2 (playback)")
