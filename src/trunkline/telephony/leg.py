"""An outbound SIP call leg with its RTP media: the domain's ``Leg``, the SIP engine's listener.

Mid-call changes of the media direction (hold, wire mute) are one re-INVITE at a time, each offering
the direction all current wishes add up to; the far end's answer decides what is in force, so a
refused re-INVITE leaves the call as the far end last agreed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Callable

from trunkline.ai.bridge import AgentBridge
from trunkline.ai.link import AgentUnreachable
from trunkline.ai.vad import VoiceActivityDetector
from trunkline.calls.ports import AgentSpec, AudioSpec, LegEvents, MediaStats, MusicOnHold, Silence, StreamInfo
from trunkline.config import TrunkConfig
from trunkline.media.sdp import SdpError, SdpSession
from trunkline.media_engine.bridge import Bridge
from trunkline.media_engine.ports import PortPoolExhausted
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import AudioSource
from trunkline.sip.refer import ReferSubscription
from trunkline.telephony.audio import AudioError, InbandDtmf

if TYPE_CHECKING:
    from trunkline.sip_engine import OutgoingCall
    from trunkline.telephony.sip_telephony import SipTelephony

log = logging.getLogger(__name__)

_DTMF_RELAY_DIGITS = frozenset("0123456789*#ABCD")
#: Waits before each attempt to reach an agent; the caller hears hold music meanwhile.
AGENT_RETRY_DELAYS_S = (0.0, 0.5, 1.5)
#: The SDP direction we offer for (held, wire-muted).
_DIRECTIONS = {(False, False): "sendrecv", (True, False): "sendonly",
               (False, True): "recvonly", (True, True): "inactive"}
_WISHES = {direction: wishes for wishes, direction in _DIRECTIONS.items()}


class SipLeg:
    def __init__(self, telephony: "SipTelephony", trunk: TrunkConfig, to: str, call_from: str, events: LegEvents) -> None:
        self._telephony = telephony
        self._events = events
        self._trunk = trunk
        self._to = to
        self._call_from = call_from
        self._media: MediaSession | None = None
        self._sdp: SdpSession | None = None
        self._dialog: OutgoingCall | None = None
        self._bridge: Bridge | None = None
        self._partner: SipLeg | None = None
        self._listener: Callable[[bytes | None], None] | None = None
        self._agent: AgentBridge | None = None
        self._agent_waiting = False  # connected while the call rings: its audio waits for the answer
        self._agent_vad: VoiceActivityDetector | None = None  # its barge-in, held back meanwhile
        self._agent_task: asyncio.Future | None = None
        self._source: AudioSource | None = None
        self._play_request = 0
        self._hangup_requested = False
        self._closed = False
        self._final_stats: MediaStats | None = None
        self._tasks: set[asyncio.Future] = set()
        self._held = False  # wished for by the domain
        self._wire_muted = False
        self._direction = "sendrecv"  # what the far end last agreed to
        self._early_answer: bytes | None = None  # the SDP of the 183 whose media flows before answer
        self._renegotiating = asyncio.Lock()
        self._refer: ReferSubscription | None = None
        self._refer_reported = False
        self._refer_timer: asyncio.TimerHandle | None = None
        self.codec = ""
        self._setup = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            self._media = await MediaSession.open(self._telephony.media_clock, self._telephony.rtp_ports,
                                                  rtp_timeout=self._trunk.rtp_timeout_s,
                                                  rtp_hold_timeout=self._trunk.rtp_hold_timeout_s)
        except PortPoolExhausted:
            self._events.leg_failed(503, "no free RTP port")
            self._close()
            return
        if self._hangup_requested:
            self._close()
            return
        self._media.on_source_finished = self._source_finished
        self._media.on_dtmf = self._on_dtmf
        self._media.on_media_timeout = self._media_timeout
        self._media.on_audio = self._listener
        host, port = self._media.local_address
        self._sdp = SdpSession(self._telephony.advertised_media_host or host, port, codecs=("PCMU", "PCMA"), dtmf=True,
                               srtp=self._trunk.srtp)
        self._media.srtp_key = self._sdp.crypto
        offer = self._sdp.create_offer("sendrecv").to_bytes()
        self._dialog = self._telephony.invite(self._trunk, self._to, self._call_from, offer, self)

    # --- Leg (the domain's side) --------------------------------------------------------------

    def hangup(self) -> None:
        self._hangup_requested = True
        if self._dialog is not None:
            self._dialog.hangup()

    def play(self, audio: AudioSpec) -> None:
        self._play_request += 1
        request = self._play_request
        try:
            source = self._telephony.audio.ready_source(audio)
        except LookupError:  # a file or URL not loaded yet
            if self._source is None:  # just answered: silence meanwhile, so RTP flows from the answer on
                self._set_source(self._telephony.audio.ready_source(Silence()))
            asyncio.ensure_future(self._play_when_loaded(request, audio))
            return
        self._set_source(source)

    async def _play_when_loaded(self, request: int, audio: AudioSpec) -> None:
        try:
            source = await self._telephony.audio.source_for(audio)
        except AudioError as exc:
            log.warning("cannot play: %s", exc)
            if request == self._play_request and not self._closed:
                self._events.leg_playback_finished()  # nothing to wait for: the app moves on
            return
        if request == self._play_request:
            self._set_source(source)

    def _set_source(self, source: AudioSource) -> None:
        self._source = source
        if self._media is not None and not self._closed and self._bridge is None:
            self._media.play(source)

    def _media_timeout(self, silent_s: float) -> None:
        self._events.leg_expired(f"no RTP or RTCP from the far end for {silent_s:.1f} s")

    def _source_finished(self, source: AudioSource) -> None:
        if source is self._source:
            self._events.leg_playback_finished()

    def bridge(self, other: "SipLeg") -> None:
        if self._media is None or other._media is None:
            return
        self._bridge = other._bridge = Bridge(self._media, other._media)
        self._partner, other._partner = other, self
        if self._is_held or other._is_held:
            self._hold_bridge_audio()

    def unbridge(self) -> None:
        bridge, partner = self._bridge, self._partner
        if bridge is None or partner is None:
            return
        bridge.unbridge()
        self._bridge = partner._bridge = None
        self._partner = partner._partner = None

    def connect_agent(self, spec: AgentSpec, info: StreamInfo) -> None:
        self.disconnect_agent()
        self._agent_task = asyncio.ensure_future(self._connect_agent(spec, info))

    async def _connect_agent(self, spec: AgentSpec, info: StreamInfo) -> None:
        task = self._agent_task
        if self.codec:  # answered; before that the far end hears nothing from us
            self.play(MusicOnHold())
        failure = ""
        for delay in AGENT_RETRY_DELAYS_S:
            if delay:
                await asyncio.sleep(delay)
            if self._closed or self._media is None or self._agent_task is not task:
                return
            link = self._telephony.agent_link(spec, info)
            try:
                await link.open()
                break
            except AgentUnreachable as exc:
                failure = str(exc)
                log.info("agent attempt failed: %s", failure)
            except Exception as exc:  # noqa: BLE001 - a bug in a link must end this call cleanly, not leak
                log.exception("agent link failed to open")
                failure = f"{type(exc).__name__}: {exc}"
        else:
            self._events.agent_ended(f"agent unreachable: {failure}", True)
            return
        if self._closed or self._agent_task is not task:
            link.close()
            return
        self._play_request += 1  # any prompt still loading must not replace the agent's audio
        self._agent = AgentBridge(
            self._media, link, auto_barge_in=spec.auto_barge_in, barge_in_patience_ms=spec.barge_in_patience_ms,
            on_hangup=lambda: self._events.agent_ended("the agent hung up", False),
            on_transfer=self._events.agent_transfer,
            on_closed=lambda reason: self._events.agent_ended(reason, False),
        )
        self._agent.start()
        if not self.codec:
            # Early media: the agent listens, but what it says waits for the answer, and the
            # ringback must not barge in on it.
            self._agent_waiting = True
            self._agent_vad, self._agent.vad = self._agent.vad, None
            self._media.play(None)

    def disconnect_agent(self) -> None:
        task, self._agent_task = self._agent_task, None
        if task is not None and not task.done():
            task.cancel()
        agent, self._agent = self._agent, None
        if agent is not None:
            agent.stop()
            if self._media is not None:
                self._media.on_audio = self._listener

    def listen(self, consumer: Callable[[bytes | None], None] | None) -> None:
        self._listener = consumer
        if self._media is not None and self._bridge is None:
            self._media.on_audio = consumer

    def media_stats(self) -> MediaStats:
        if self._final_stats is not None:
            return self._final_stats
        if self._media is None:
            return MediaStats()
        snap = self._media.stats()
        return MediaStats(packets_sent=snap.packets_sent, packets_received=snap.packets_received,
                          packets_lost=snap.packets_lost, bytes_sent=snap.bytes_sent,
                          jitter_ms=snap.jitter_ms, estimated_mos=snap.estimated_mos)

    # --- mid-call verbs ----------------------------------------------------------------------

    def transfer(self, to: str) -> None:
        assert self._dialog is not None
        subscription = ReferSubscription(self._telephony.endpoint.timers.t1)
        self._refer, self._refer_reported = subscription, False
        headers = (("Refer-To", f"<{self._telephony.destination_uri(self._trunk, to)}>"),
                   ("Referred-By", f"<{self._telephony.local_uri(self._call_from)}>"))
        self._spawn(self._send_refer(self._dialog, subscription, headers))

    async def _send_refer(self, dialog: "OutgoingCall", subscription: ReferSubscription,
                          headers: tuple[tuple[str, str], ...]) -> None:
        status = await dialog.request("REFER", headers=headers)
        subscription.refer_answered(status, asyncio.get_running_loop().time())
        self._refer_progress(subscription)

    def _refer_progress(self, subscription: ReferSubscription) -> None:
        """Report the transfer's outcome once it is known, else wait for it until the subscription's
        deadline (a peer that never reports fails the transfer, it does not hang it)."""
        if self._closed or subscription is not self._refer or self._refer_reported:
            return
        if self._refer_timer is not None:
            self._refer_timer.cancel()
            self._refer_timer = None
        loop = asyncio.get_running_loop()
        outcome = subscription.expire(loop.time())
        if outcome is not None:
            self._refer_reported = True
            self._events.leg_transfer_result(outcome.succeeded, outcome.reason)
        elif subscription.deadline is not None:
            self._refer_timer = loop.call_at(subscription.deadline, self._refer_progress, subscription)

    def set_hold(self, held: bool) -> None:
        self._held = held
        self._spawn(self._renegotiate())

    def set_mute(self, muted: bool, wire: bool) -> None:
        assert self._media is not None
        self._media.muted = muted
        if wire or not muted:  # unmuting undoes a wire mute as well
            self._wire_muted = muted
            self._spawn(self._renegotiate())

    async def _renegotiate(self) -> None:
        """Offer the direction the current wishes add up to, unless it is already in force."""
        async with self._renegotiating:
            direction = _DIRECTIONS[self._held, self._wire_muted]
            if direction == self._direction or self._closed or self._dialog is None or self._sdp is None:
                return
            was_held, wish = self._is_held, (self._held, self._wire_muted)
            status, answer = await self._dialog.reinvite(self._sdp.create_offer(direction).to_bytes())
            if self._closed or self._media is None:
                return
            negotiated, problem = None, f"answered {status}"
            if 200 <= status < 300:
                try:
                    negotiated = self._sdp.receive_answer(answer or b"")
                except SdpError as exc:
                    problem = f"unusable answer: {exc}"
            if negotiated is None:
                log.warning("re-INVITE offering %s failed (%s); the call stays %s", direction, problem, self._direction)
                held, wire_muted = _WISHES[self._direction]  # the wishes it carried are dropped; newer ones stay
                if self._held == wish[0]:
                    self._held = held
                if self._wire_muted == wish[1]:
                    self._wire_muted = wire_muted
                self._sdp.create_offer(self._direction)  # our SDP is again what is in force
                return
            self._media.configure(negotiated)
            self._direction = direction
            if self._is_held != was_held:
                self._hold_bridge_audio()
                self._events.leg_hold_changed(self._is_held)

    @property
    def _is_held(self) -> bool:
        return self._direction in ("sendonly", "inactive")

    def _hold_bridge_audio(self) -> None:
        """While either side of a bridge is held, its partner hears music on hold and the held side
        hears nothing of the bridge (it is not in the conversation); otherwise the bridge flows.
        Not bridged, a held call keeps playing what its app plays."""
        bridge, partner = self._bridge, self._partner
        if bridge is None or partner is None:
            return
        for leg, other in ((self, partner), (partner, self)):
            assert leg._media is not None
            if other._is_held:
                source = self._telephony.audio.ready_source(MusicOnHold())
            elif leg._is_held:
                source = self._telephony.audio.ready_source(Silence())
            else:
                source = bridge.into_a if bridge.a is leg._media else bridge.into_b
            leg._media.play(source)

    def send_dtmf(self, digit: str, mode: str, duration_ms: int) -> None:
        assert self._media is not None and self._dialog is not None
        if mode == "info":
            self._spawn(self._send_info(self._dialog, f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()))
        elif mode == "inband":
            self._media.play(InbandDtmf(self._media, digit, duration_ms))
        else:  # RFC 4733; a far end that did not negotiate telephone-event gets in-band tones instead
            self._media.send_dtmf(digit, duration_ms)

    async def _send_info(self, dialog: "OutgoingCall", body: bytes) -> None:
        status = await dialog.request("INFO", "application/dtmf-relay", body)
        if status >= 300:
            log.warning("DTMF INFO answered %d", status)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("mid-call request failed", exc_info=task.exception())

    # --- CallListener (the SIP engine's side) -------------------------------------------------

    def on_provisional(self, status: int, reason: str, sdp: bytes | None) -> None:
        """Ringing; with SDP (a 183) also early media: its answer starts the RTP at once, so the
        carrier's ringback or announcement reaches the listener while the call rings."""
        if status in (180, 183):
            self._events.leg_ringing()
        if sdp and self._sdp is not None and self._media is not None and sdp != self._early_answer:
            try:
                self._media.configure(self._sdp.receive_answer(sdp))
            except SdpError as exc:
                log.info("early media refused: unusable SDP in %d: %s", status, exc)
                return
            first, self._early_answer = self._early_answer is None, sdp
            if first:
                self._events.leg_early_media()

    def on_answered(self, sdp: bytes) -> None:
        """A 2xx without SDP, or with the early answer again, keeps the early media as it is."""
        assert self._sdp is not None and self._media is not None
        negotiated = self._sdp.negotiated
        if (sdp and sdp != self._early_answer) or negotiated is None:
            try:
                negotiated = self._sdp.receive_answer(sdp)
            except SdpError as exc:
                log.warning("unusable SDP answer: %s", exc)
                self._events.leg_failed(488, "unusable SDP answer")
                self.hangup()
                return
            self._media.configure(negotiated)
        self.codec = negotiated.codec
        agent = self._agent
        if agent is not None and self._agent_waiting:  # connected during the early media
            self._agent_waiting = False
            agent.vad = self._agent_vad
            self._media.play(agent.queue)
        self._events.leg_answered(negotiated.codec)

    def on_failed(self, status: int, reason: str, headers: dict) -> None:
        self._events.leg_failed(status, reason)

    def on_remote_bye(self) -> None:
        self._events.leg_remote_hangup()

    def on_reinvite(self, sdp: bytes | None) -> tuple[int, bytes | None]:
        """Answer the far end's re-offer: a ``sendonly`` offer (it holds us) gets ``recvonly``, our own
        hold or wire mute stays in force, and a new address or port moves the media."""
        assert self._sdp is not None and self._media is not None
        if not sdp:  # the far end asks for an offer; its answer comes in the ACK (RFC 3261 §14.2)
            return 200, self._sdp.create_offer(self._direction).to_bytes()
        try:
            answer, negotiated = self._sdp.receive_offer(sdp, self._direction)
        except SdpError as exc:
            log.info("re-INVITE refused: %s", exc)
            return 488, None
        self._media.configure(negotiated)
        return 200, answer.to_bytes()

    def on_ack_answer(self, sdp: bytes) -> None:
        """The answer to the offer in our 200 (delayed-offer re-INVITE): the media follows it."""
        if self._sdp is None or self._media is None:
            return
        try:
            self._media.configure(self._sdp.receive_answer(sdp))
        except SdpError as exc:
            log.warning("unusable SDP answer in ACK: %s; hanging up", exc)
            self._events.leg_failed(488, "unusable SDP answer in ACK")
            self.hangup()

    def on_info(self, content_type: str, body: bytes) -> None:
        if content_type.lower() != "application/dtmf-relay":
            return
        for line in body.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            digit = value.strip().upper()
            if key.strip().lower() == "signal" and digit in _DTMF_RELAY_DIGITS:
                self._on_dtmf(digit)

    def _on_dtmf(self, digit: str) -> None:
        """A key the caller pressed (RFC 4733 or SIP INFO): the agent hears of it, then the call."""
        if self._agent is not None:
            self._agent.link.send_dtmf(digit)
        self._events.leg_dtmf(digit)

    def on_notify(self, event: str | None, subscription_state: str | None, content_type: str, body: bytes) -> int:
        subscription = self._refer
        if subscription is None:
            return 481
        status = subscription.receive_notify(event, subscription_state, content_type, body,
                                             asyncio.get_running_loop().time())
        # Reported after this NOTIFY's 200 is on the wire: a successful transfer's BYE follows it.
        asyncio.get_running_loop().call_soon(self._refer_progress, subscription)
        return status

    def on_terminated(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._final_stats = self.media_stats()
        self._closed = True
        if self._refer_timer is not None:
            self._refer_timer.cancel()
        self.disconnect_agent()
        if self._bridge is not None:
            self.unbridge()
        if self._media is not None:
            self._media.close()
        # The dialog holds us as its listener until its transactions end (Timer D: 32 s): by then we
        # hold neither it (a cycle) nor the media and SDP state, which would wait with us for nothing.
        self._dialog = self._media = self._sdp = None
        self._events.leg_closed()
