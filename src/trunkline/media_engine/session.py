"""One call leg's media: an RTP/RTCP socket pair bridged to the sans-I/O core and the media clock.

Inbound datagrams are handled as they arrive (parse, statistics, DTMF, jitter buffer); everything
paced (playout to the consumer, the outbound frame, DTMF sending, RTCP reports) happens in
:meth:`MediaSession.tick`, called by the shared :class:`~trunkline.media_engine.clock.MediaClock`,
so a leg costs no timer or task of its own.

Choices a peer can observe:

* RTP is symmetric: we send from the port we receive on, and send to wherever the peer's stream
  actually comes from (first valid packet latches; the same SSRC moving to a new address re-latches),
  because NATs and SBCs routinely make the SDP address wrong.
* RTCP goes to the peer's RTP port + 1 from our RTP port + 1 (no ``a=rtcp-mux`` in our SDP), or
  to wherever the peer's RTCP comes from; RTCP multiplexed on the RTP port is accepted too.
* Muted, the leg keeps sending G.711 silence rather than nothing: the source keeps being consumed
  (muting is a microphone switch, not a pause) and the stream stays continuous, so NAT bindings and
  the peer's RTP-timeout hang-up detection are unaffected.
* A live source with nothing to say (an agent between sentences) is also filled with silence; only
  ``play(None)``, a finished source or a direction that forbids sending stops the packets.
* A far end that sends neither RTP nor RTCP for ``rtp_timeout`` seconds is taken for gone (a carrier
  that crashed sends no BYE): ``on_media_timeout`` says so. While the stream is not two-way (a hold
  by either end, a wire mute) silence is expected, and ``rtp_hold_timeout`` applies instead.
* With :attr:`MediaSession.srtp_key` set and an SRTP answer, every RTP and RTCP packet is encrypted
  and authenticated (RFC 3711); a packet that fails authentication or replays is dropped before it
  is parsed, so it can neither latch our stream nor reach the statistics.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from trunkline.media.dtmf import DtmfReceiver, DtmfSender, ToneGenerator
from trunkline.media.errors import MediaError, RtcpError, RtpError
from trunkline.media.g711 import PCMU, G711Codec, codec_by_name, transcoder
from trunkline.media.jitter import JitterBuffer, ReorderBuffer
from trunkline.media.rtcp import (
    Bye,
    ReceiverReport,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    build_rtcp,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)
from trunkline.media.rtp import RtpSender, is_rtcp, parse_rtp_fields
from trunkline.media.sdp import NegotiatedMedia
from trunkline.media.srtp import SdesKey, SrtpContext, SrtpError
from trunkline.media.stats import MediaStatsSnapshot, ReceiveStatistics, snapshot
from trunkline.media_engine.clock import Deadline, MediaClock
from trunkline.media_engine.ports import PortLease, RtpPortPool
from trunkline.media_engine.sources import FRAME_MS, FRAME_SAMPLES, SILENCE_FRAME, AudioSource

log = logging.getLogger(__name__)

Address = tuple[str, int] | tuple[str, int, int, int]
_HOLD_ADDRESSES = ("0.0.0.0", "::")
_EVENT_PAYLOAD_BYTES = 4
MOVE_GRACE_S = 2.0
"""After the SDP moves the far end's media, how long its old address's packets (still in flight,
or an old media server finishing) may not latch us back there. It is not forever: behind a NAT
the new SDP address may be wrong and the old source the only one there is."""


def _sdp_target(address: str, port: int) -> tuple[str, int] | None:
    """Where the SDP says to send, or None for a hold address, port 0 or a name.

    Names would need DNS, which must not block the media path; trunks put literal addresses in
    SDP, and for the rare one that does not, latching onto its first packet still finds it.
    """
    if port == 0 or address in _HOLD_ADDRESSES:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address)
        except OSError:
            continue
        return (address, port)
    return None


class _SessionSocket:
    """One of a session's two UDP sockets, read and written directly instead of through an asyncio
    transport. uvloop's UDP transport reads until EAGAIN, so with one packet per socket per 20 ms,
    the usual case, every packet cost a second ``recvmsg`` that found nothing; here each readiness
    callback reads one datagram (polling is level-triggered: another one waiting brings another
    callback): perf counted two ``recvmsg`` per packet under bench/ai.py before, one ``recvfrom``
    now, and a direct ``sendto`` also skips the transport's own bookkeeping. A send that fails (a
    full buffer, an ICMP error reported on the socket) drops that datagram and is counted: RTP must
    not queue behind a blocked socket and reach the peer late."""

    __slots__ = ("_sock", "_fd", "_loop", "_handler", "errors")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handler: Callable[[bytes, Address], None],
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = loop
        self._handler = handler
        self.errors = 0
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data, addr = self._sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. ICMP unreachable from a peer that has gone away
            self.errors += 1
            return
        self._handler(data, addr)

    def sendto(self, data: bytes, addr: Address) -> None:
        try:
            self._sock.sendto(data, addr)
        except OSError:
            self.errors += 1

    send_rtcp = sendto  # what an SRTP socket encrypts differently from RTP

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
            self._sock.close()
            del self._handler  # the session's own method: keeping it would make a cycle of the closed session


class _SrtpSocket:
    """A :class:`_SessionSocket` of an SRTP call: encrypts what goes out, authenticates and decrypts
    what comes in, then hands the clear packet to the session's own handler. It takes the plain
    socket's place in the session, so a call without SRTP runs exactly the code it ran before."""

    __slots__ = ("_inner", "_deliver", "context", "refused")

    def __init__(self, inner: _SessionSocket, context: SrtpContext, *, rtcp_only: bool) -> None:
        self._inner = inner
        self._deliver = inner._handler
        self.context = context
        self.refused = 0
        inner._handler = self._receive_rtcp if rtcp_only else self._receive

    @property
    def errors(self) -> int:
        return self._inner.errors

    def _receive(self, data: bytes, addr: Address) -> None:
        context = self.context
        try:
            clear = context.unprotect_rtcp(data) if is_rtcp(data) else context.unprotect(data)
        except SrtpError as exc:
            self._refuse(exc, addr)
            return
        self._deliver(clear, addr)

    def _receive_rtcp(self, data: bytes, addr: Address) -> None:
        try:
            clear = self.context.unprotect_rtcp(data)
        except SrtpError as exc:
            self._refuse(exc, addr)
            return
        self._deliver(clear, addr)

    def _refuse(self, exc: SrtpError, addr: Address) -> None:
        if not self.refused:  # the first one says why; a flood of forgeries must not flood the log
            log.warning("%s from %s dropped (later ones are only counted)", exc, addr)
        self.refused += 1

    def sendto(self, rtp: bytes, addr: Address) -> None:
        self._inner.sendto(self.context.protect(rtp), addr)

    def send_rtcp(self, rtcp: bytes, addr: Address) -> None:
        self._inner.sendto(self.context.protect_rtcp(rtcp), addr)

    def close(self) -> None:
        self._inner.close()
        del self._deliver  # the session's method: see _SessionSocket.close


class MediaSession:
    """The media of one call leg; create with :meth:`open`, then :meth:`configure` from the SDP.

    Callbacks run on the event loop; they are plain attributes so the calls layer can swap them:
    ``on_audio(pcm)`` gets each tick's inbound frame (320 bytes of PCM16, or None for a gap),
    ``on_dtmf(digit)`` each received key press, ``on_source_finished(source)`` a source that ended.
    ``on_media_timeout(silent_s)`` that nothing came from the far end for too long (see the module's
    docstring). An exception from a callback is logged and does not disturb the media. With
    :attr:`consumer_codec` set, ``on_audio`` gets G.711 in that law (160 bytes) instead of PCM16.

    With :attr:`deliver_on_arrival` set, ``on_audio`` gets each frame when its packet arrives (in
    sequence, through a :class:`ReorderBuffer`) instead of at the next tick from the jitter buffer:
    for a consumer that is not a listener's ear (an AI agent, which has its own buffering), the
    jitter buffer's delay and the wait for the clock would be pure added latency.
    """

    def __init__(
        self,
        clock: MediaClock,
        lease: PortLease,
        loop: asyncio.AbstractEventLoop,
        *,
        cname: str | None = None,
        rtcp_interval: float = 5.0,
        jitter_min_ms: int = 20,
        jitter_max_ms: int = 200,
        rtp_timeout: float = 0.0,
        rtp_hold_timeout: float = 0.0,
    ) -> None:
        self.on_audio: Callable[[bytes | None], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.on_source_finished: Callable[[AudioSource], None] | None = None
        self.on_media_timeout: Callable[[float], None] | None = None
        self.muted = False
        self.srtp_key: SdesKey | None = None
        """Our SRTP key (the one our SDP offered or answered with): set before :meth:`configure` on a
        leg whose SDP negotiates SRTP."""
        self.malformed = 0
        """Datagrams that were not valid RTP/RTCP (or telephone-event) and were dropped."""
        self.ignored = 0
        """Valid RTP dropped: unexpected payload type, foreign source, or arriving before configure."""
        self.stale_frames_dropped = 0
        """Frames of a live source dropped because the clock skipped the intervals they were for."""
        self.rtcp_interval = rtcp_interval
        self._clock = clock
        self._now = clock.now  # the clock's timebase: arrivals compare with the times ticks are given
        self._lease = lease
        rng = random.SystemRandom()
        self._rtp = RtpSender(
            rng.getrandbits(32), PCMU.payload_type, sequence=rng.getrandbits(16), timestamp=rng.getrandbits(32)
        )
        self.cname = cname or f"trunkline-{self._rtp.ssrc:08x}"
        self._dtmf_tx = DtmfSender(self._rtp)
        self._inband_dtmf: deque[bytes] = deque()
        self._dtmf_rx = DtmfReceiver()
        self._jitter = JitterBuffer(min_delay_ms=jitter_min_ms, max_delay_ms=jitter_max_ms)
        self._reorder = ReorderBuffer(max_wait_ms=jitter_max_ms)
        self._on_arrival = False
        self._rx: ReceiveStatistics | None = None
        self._prior_received = (0, 0, 0)  # packets, octets, lost of earlier remote SSRCs
        self._negotiated: NegotiatedMedia | None = None
        self._codec: G711Codec = PCMU
        self._silence_payload = PCMU.silence(FRAME_SAMPLES)
        self._audio_pt = -1
        self._event_pt = -1
        self._may_send = False
        self._may_receive = False
        self._sdp_remote: tuple[str, int] | None = None
        self._remote: Address | None = None
        self._latched = False
        self._left: Address | None = None  # where the far end's media came from before it moved
        self._left_until = 0.0  # packets from there cannot re-latch until then
        self._remote_ssrc: int | None = None
        self._rtcp_target: tuple[_SessionSocket | _SrtpSocket, Address] | None = None
        self._rtcp_latched = False
        self._packets_at_last_report = 0
        self._next_rtcp = 0.0
        self._rtt: float | None = None
        self._rtp_timeout = rtp_timeout  # 0: never
        self._rtp_hold_timeout = rtp_hold_timeout
        self._heard_at = 0.0  # the far end's last RTP or RTCP (or the last renegotiation)
        self._silence_watch: Deadline | None = None
        self._wall_offset = time.time() - clock.now()
        self._source: AudioSource | None = None
        self._live_source = False
        self._source_streaming = False  # the live source had a frame at the last slot
        self.frame_held = False
        """This slot's frame is held for the live source's late frame (see :meth:`play`); read-only
        for the feeder, which checks it before calling :meth:`send_late_frame`."""
        self._read_encoded: Callable[[], bytes | None] | None = None  # the source's, if it holds G.711
        self._source_to_wire: Callable[[bytes], bytes] | None = None  # its law -> ours; None: as is
        self._consumer_codec: G711Codec | None = None
        self._to_consumer: Callable[[bytes], bytes] | None = PCMU.decode  # None: payloads as they are
        self._rtp_socket: _SessionSocket | _SrtpSocket
        self._rtcp_socket: _SessionSocket | _SrtpSocket
        self._srtp_keys: tuple[SdesKey, SdesKey] | None = None
        self._closing = False
        self._sent_slot = -1  # the clock slot whose frame has gone out (possibly ahead of its tick)
        self._closed: asyncio.Future[None] = loop.create_future()

    @classmethod
    async def open(
        cls,
        clock: MediaClock,
        pool: RtpPortPool,
        *,
        cname: str | None = None,
        rtcp_interval: float = 5.0,
        jitter_min_ms: int = 20,
        jitter_max_ms: int = 200,
        rtp_timeout: float = 0.0,
        rtp_hold_timeout: float = 0.0,
    ) -> MediaSession:
        """Lease a port pair, start receiving on it and join the clock; raises PortPoolExhausted."""
        loop = asyncio.get_running_loop()
        lease = pool.acquire()
        session = cls(
            clock,
            lease,
            loop,
            cname=cname,
            rtcp_interval=rtcp_interval,
            jitter_min_ms=jitter_min_ms,
            jitter_max_ms=jitter_max_ms,
            rtp_timeout=rtp_timeout,
            rtp_hold_timeout=rtp_hold_timeout,
        )
        try:
            session._rtp_socket = _SessionSocket(loop, lease.rtp_socket, session._on_rtp_datagram)
            session._rtcp_socket = _SessionSocket(loop, lease.rtcp_socket, session._on_rtcp_datagram)
        except BaseException:
            if hasattr(session, "_rtp_socket"):
                session._rtp_socket.close()
            lease.release()
            raise
        clock.add(session)
        return session

    # --- state ------------------------------------------------------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        """Where the peer should send RTP: the address and port to put in our SDP."""
        return (self._lease.pool.host, self._lease.port)

    @property
    def remote_address(self) -> Address | None:
        """Where RTP currently goes: the latched source of the peer's stream, else the SDP address."""
        return self._remote

    @property
    def latched(self) -> bool:
        return self._latched

    @property
    def negotiated(self) -> NegotiatedMedia | None:
        return self._negotiated

    @property
    def clock(self) -> MediaClock:
        return self._clock

    @property
    def source(self) -> AudioSource | None:
        return self._source

    @property
    def ssrc(self) -> int:
        return self._rtp.ssrc

    @property
    def remote_ssrc(self) -> int | None:
        return self._remote_ssrc

    @property
    def rtt(self) -> float | None:
        """Round-trip time in seconds from the peer's latest RTCP report about us, if any."""
        return self._rtt

    @property
    def jitter_buffer(self) -> JitterBuffer:
        return self._jitter

    @property
    def reorder_buffer(self) -> ReorderBuffer:
        return self._reorder

    @property
    def deliver_on_arrival(self) -> bool:
        return self._on_arrival

    @deliver_on_arrival.setter
    def deliver_on_arrival(self, value: bool) -> None:
        if value != self._on_arrival:
            self._on_arrival = value
            self._reset_inbound_audio()

    @property
    def consumer_codec(self) -> G711Codec | None:
        return self._consumer_codec

    @consumer_codec.setter
    def consumer_codec(self, codec: G711Codec | None) -> None:
        """What ``on_audio`` gets: PCM16 (None), or G.711 in ``codec``'s law, passed through from the
        wire when the call speaks it (an agent that wants µ-law then costs no transcoding at all)."""
        self._consumer_codec = codec
        self._bind_consumer()

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def srtp_refused(self) -> int:
        """SRTP/SRTCP packets dropped because they failed authentication or were replays."""
        return getattr(self._rtp_socket, "refused", 0) + getattr(self._rtcp_socket, "refused", 0)

    @property
    def socket_errors(self) -> int:
        """Datagrams that could not be sent or read (a full buffer, an ICMP error from the peer)."""
        return self._rtp_socket.errors + self._rtcp_socket.errors

    def stats(self) -> MediaStatsSnapshot:
        """Call-quality figures; the MOS delay term is half the RTT plus the jitter buffer's delay (none
        when frames are delivered on arrival)."""
        buffered_ms = 0.0 if self._on_arrival else self._jitter.target_delay_ms
        delay_ms = buffered_ms + (self._rtt * 500.0 if self._rtt is not None else 0.0)
        snap = snapshot(self._rx, self._rtp.stats, one_way_delay_ms=delay_ms)
        packets, octets, lost = self._prior_received
        if packets:
            snap = replace(
                snap,
                packets_received=snap.packets_received + packets,
                bytes_received=snap.bytes_received + octets,
                packets_lost=snap.packets_lost + lost,
            )
        return snap

    # --- control ----------------------------------------------------------------------------------

    def configure(self, negotiated: NegotiatedMedia) -> None:
        """Apply an offer/answer outcome; call again after every re-INVITE.

        A changed SDP address replaces the latched one (the peer moved on purpose); an unchanged one
        keeps the latch, since the SDP address may be the wrong one that latching corrected.
        The far end's silence is counted afresh from here, with the timeout the new direction calls
        for: it has just shown it is there, and after a hold it had no reason to send.
        Raises MediaError for a codec other than PCMU/PCMA, or SRTP without :attr:`srtp_key`.
        """
        if self._closing:
            raise MediaError("media session is closed")
        codec = codec_by_name(negotiated.codec)
        self._secure(negotiated.remote_crypto)
        if self._negotiated is not None and (codec is not self._codec or negotiated.payload_type != self._audio_pt):
            self._reset_inbound_audio()
        elif self._negotiated is None:
            self._next_rtcp = self._now() + self.rtcp_interval * random.uniform(0.5, 1.5)
        self._codec = codec
        self._silence_payload = codec.silence(FRAME_SAMPLES)
        self._bind_consumer()
        self._bind_source()
        self._audio_pt = negotiated.payload_type
        self._rtp.payload_type = negotiated.payload_type
        self._event_pt = negotiated.telephone_event_pt if negotiated.telephone_event_pt is not None else -1
        if negotiated.telephone_event_pt is not None:
            self._dtmf_tx.payload_type = negotiated.telephone_event_pt
        target = _sdp_target(negotiated.remote_address, negotiated.remote_port)
        if self._negotiated is None or target != self._sdp_remote:
            if self._latched:
                self._left, self._left_until = self._remote, self._now() + MOVE_GRACE_S
            self._sdp_remote = target
            self._remote = target
            self._latched = False
            self._rtcp_latched = False
            self._rtcp_target = (self._rtcp_socket, (target[0], target[1] + 1)) if target else None
        self._may_send = negotiated.may_send
        self._may_receive = negotiated.may_receive
        self._negotiated = negotiated
        self._heard_at = self._now()
        if self._silence_watch is not None:
            self._silence_watch.cancel()
            self._silence_watch = None
        self._watch_silence(self._heard_at)

    def _secure(self, remote: SdesKey | None) -> None:
        """Put SRTP sockets in the plain ones' place when SRTP is negotiated. A re-INVITE that keeps
        the keys keeps the context: a fresh one would restart the rollover counter and replay window,
        and encrypting again under the same key from index zero would reuse keystream."""
        rtp_socket = self._rtp_socket
        if remote is None:
            if isinstance(rtp_socket, _SrtpSocket):
                raise MediaError("SRTP cannot be turned off mid-call")
            return
        local = self.srtp_key
        if local is None:
            raise MediaError("the far end's SRTP key came without one of ours (srtp_key is not set)")
        if self._srtp_keys == (local, remote):
            return
        context = SrtpContext(local, remote)
        if isinstance(rtp_socket, _SrtpSocket):
            rtp_socket.context = self._rtcp_socket.context = context  # type: ignore[union-attr]
        else:
            self._rtp_socket = _SrtpSocket(rtp_socket, context, rtcp_only=False)
            self._rtcp_socket = _SrtpSocket(self._rtcp_socket, context, rtcp_only=True)  # type: ignore[arg-type]
        self._srtp_keys = (local, remote)

    def _watch_silence(self, now: float) -> None:
        """Re-check the far end's silence when it would reach the timeout in force; fire
        ``on_media_timeout`` once it has. One deadline per timeout period, not per packet: packets
        only move :attr:`_heard_at`, which the deadline reads when it comes."""
        self._silence_watch = None
        negotiated = self._negotiated
        if self._closing or negotiated is None:
            return
        two_way = negotiated.local_direction == "sendrecv" and negotiated.remote_direction == "sendrecv"
        timeout = self._rtp_timeout if two_way else self._rtp_hold_timeout
        if not timeout:
            return
        due = self._heard_at + timeout
        if now < due:
            self._silence_watch = self._clock.call_at(due, self._watch_silence)
            return
        silent = now - self._heard_at
        log.warning("no RTP or RTCP from the far end of port %d for %.1f s", self._lease.port, silent)
        callback = self.on_media_timeout
        if callback is not None:
            try:
                callback(silent)
            except Exception:
                log.exception("on_media_timeout callback failed")

    def play(self, source: AudioSource | None) -> AudioSource | None:
        """Make ``source`` what this leg sends from the next tick on (None: send nothing); returns the previous.

        A source with a true ``live`` attribute is fed in real time (an agent's queue), so when it
        runs dry at a tick in mid-stream, its frame is more likely a few milliseconds late than over.
        The slot is then held until the feeder calls :meth:`send_late_frame` or the next tick comes
        (which lets the slot pass unsent: the RTP timestamp moves on, the next packet starts a talkspurt).
        Sending silence instead would put the late frame a whole frame behind, and every frame after
        it: a queue fed and drained at the same rate never gives that frame back, so each late frame
        would add 20 ms to the rest of the agent's turn."""
        previous = self._source
        self._source = source
        self._live_source = bool(getattr(source, "live", False))
        self._source_streaming = self.frame_held = False
        self._bind_source()
        return previous

    def _bind_source(self) -> None:
        """Chosen once per source (and codec change), not per frame: whether the source's frames can
        go on the wire as G.711 they already are."""
        source = self._source
        codec = getattr(source, "codec", None)
        if codec is None:
            self._read_encoded = self._source_to_wire = None
        else:
            self._read_encoded = source.read_encoded  # type: ignore[union-attr]
            self._source_to_wire = transcoder(codec, self._codec)

    def _bind_consumer(self) -> None:
        codec = self._consumer_codec
        self._to_consumer = self._codec.decode if codec is None else transcoder(self._codec, codec)

    def send_next_frame_now(self) -> None:
        """Send the next outbound frame at once instead of at the next tick, which then sends nothing
        for this leg: the packet rate is unchanged (one frame arrives early, which any jitter buffer
        absorbs), but a change of what the caller hears — silence after an agent's ``clear`` — is on
        the wire without waiting up to a frame for the clock. A slot held for a live source's late
        frame is sent instead, with whatever the source has now.
        Does nothing if the next tick's frame has already gone out; a tick running late does not
        block this, its slot counts as past (see :meth:`MediaClock.slot_at`)."""
        if self._negotiated is None or self._closing:
            return
        self._source_streaming = False  # whatever the source has now goes out: no slot is held
        if self.frame_held:  # the slot being held is the one to use
            self.frame_held = False
            self._tick_outbound()
            return
        slot = self._clock.slot_at(self._now(), self)
        if slot <= self._sent_slot:
            return
        self._sent_slot = slot
        self._tick_outbound()

    def send_late_frame(self) -> None:
        """The live source has a whole frame again: if this slot's frame is being held for it (see
        :meth:`play`), send it now."""
        if self.frame_held and not self._closing:
            self.frame_held = False
            self._tick_outbound()

    def send_dtmf(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Queue key presses: RFC 4733 events if negotiated, else in-band tones; they pause the source."""
        if self._negotiated is None:
            raise MediaError("cannot send DTMF before the media is negotiated")
        if self._event_pt >= 0:
            self._dtmf_tx.send(digits, duration_ms, gap_ms)
            return
        tone_frames = -(-duration_ms // FRAME_MS)
        gap_frames = -(-gap_ms // FRAME_MS)
        for digit in digits:
            generator = ToneGenerator.dtmf(digit)
            self._inband_dtmf.extend(generator.generate(FRAME_SAMPLES) for _ in range(tone_frames))
            self._inband_dtmf.extend([SILENCE_FRAME] * gap_frames)

    def close(self) -> None:
        """Say RTCP BYE, leave the clock, close the sockets and give the port back. Idempotent.

        The callbacks and the source are dropped too: they are usually the owner's bound methods and
        objects holding the session, and with those cycles gone a closed call is freed by reference
        counting alone, without waiting for (and fragmenting memory until) the cyclic collector."""
        if self._closing:
            return
        self._closing = True
        self._clock.remove(self)
        if self._silence_watch is not None:
            self._silence_watch.cancel()
            self._silence_watch = None
        if self._negotiated is not None:
            self._send_rtcp(self._now(), bye=True)
        self._rtp_socket.close()
        self._rtcp_socket.close()
        self._lease.release()
        self.on_audio = self.on_dtmf = self.on_source_finished = self.on_media_timeout = None
        self.play(None)
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # --- the clock --------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._negotiated is None:
            return
        try:
            self._tick_inbound(now)
        except Exception:
            log.exception("inbound media tick failed on port %d", self._lease.port)
        try:
            slot = self._clock.slot
            sent = self._sent_slot
            if slot > sent:
                self._sent_slot = slot
                if self.frame_held:  # the live source's frame never came: the held slot passes unsent
                    self.frame_held = False
                    self._rtp.skip()
                if slot > sent + 1 and sent >= 0:
                    self._let_slots_pass(slot - sent - 1)
                self._tick_outbound()
        except Exception:
            log.exception("outbound media tick failed on port %d", self._lease.port)
        if now >= self._next_rtcp:
            self._next_rtcp = now + self.rtcp_interval
            self._send_rtcp(now)

    def _let_slots_pass(self, count: int) -> None:
        """The clock skipped ``count`` intervals (the loop stalled). The RTP timestamp moves on with the
        wall clock, so the far end sees a gap rather than late packets, and a live source drops the
        audio it queued for those intervals: its feeder kept sending in real time, and playing that
        audio now would make the caller hear everything after it as much later, for good."""
        self._rtp.skip(self._rtp.samples_per_frame * count)
        source = self._source
        if self._live_source and source is not None:
            read = self._read_encoded or source.read
            for _ in range(count):
                if read() is None:
                    break
                self.stale_frames_dropped += 1

    def _tick_inbound(self, now: float) -> None:
        consumer = self.on_audio
        if consumer is None:
            if len(self._jitter) or len(self._reorder):
                self._reset_inbound_audio()  # nobody listens any more: no stale audio for the next listener
        elif self._on_arrival:
            convert = self._to_consumer
            for payload in self._reorder.tick(now):
                consumer(payload if payload is None or convert is None else convert(payload))
        else:
            payload = self._jitter.pop(now)
            convert = self._to_consumer
            consumer(payload if payload is None or convert is None else convert(payload))
        for digit in self._dtmf_rx.poll(now):
            self._deliver_dtmf(digit.digit)

    def _tick_outbound(self) -> None:
        rtp = self._rtp
        remote = self._remote
        if not self._may_send or remote is None:
            rtp.skip()
            return
        if self._event_pt >= 0:
            event = self._dtmf_tx.tick()
            if event is not None:
                self._rtp_socket.sendto(event, remote)
                return
        if self._inband_dtmf:
            self._rtp_socket.sendto(rtp.packetize(self._codec.encode(self._inband_dtmf.popleft())), remote)
            return
        source = self._source
        if source is None:
            rtp.skip()
            return
        read_encoded = self._read_encoded
        frame = source.read() if read_encoded is None else read_encoded()
        if frame is None:
            if source.finished:
                rtp.skip()
                self.play(None)
                callback = self.on_source_finished
                if callback is not None:
                    callback(source)
                return
            if self._source_streaming:  # a live source ran dry mid-stream: hold the slot (see play)
                self._source_streaming = False
                self.frame_held = True
                return
            payload = self._silence_payload
        else:
            self._source_streaming = self._live_source
            if self.muted:
                payload = self._silence_payload
            elif read_encoded is None:
                payload = self._codec.encode(frame)
            else:
                to_wire = self._source_to_wire
                payload = frame if to_wire is None else to_wire(frame)
        self._rtp_socket.sendto(rtp.packetize(payload), remote)

    # --- inbound datagrams ------------------------------------------------------------------------

    def _on_rtp_datagram(self, data: bytes, addr: Address) -> None:
        """Every datagram on the RTP socket (the body is inline, under one ``try``: a Python call less
        per packet); a datagram that breaks something is logged and dropped, and never disturbs the
        socket or the loop. A tick that came due while the loop was busy runs first
        (:meth:`MediaClock.poll`)."""
        try:
            self._clock.poll()
            if self._negotiated is None or self._closing:
                self.ignored += 1
                return
            if is_rtcp(data):  # RTCP multiplexed on the RTP port
                self._on_rtcp(data, addr, self._rtp_socket)
                return
            try:
                pt, sequence, timestamp, ssrc, payload = parse_rtp_fields(data)
            except RtpError:
                self.malformed += 1
                return
            if pt == self._audio_pt:
                valid = len(payload) > 0
            elif pt == self._event_pt:
                valid = len(payload) >= _EVENT_PAYLOAD_BYTES
            else:
                self.ignored += 1
                return
            if not valid:  # checked before latching: a junk packet must not steer our stream
                self.malformed += 1
                return
            if addr != self._remote:
                if (self._latched and ssrc != self._remote_ssrc
                        or addr == self._left and self._now() < self._left_until):
                    self.ignored += 1
                    return
                self._remote = addr
                if not self._rtcp_latched:
                    self._rtcp_target = (self._rtcp_socket, (addr[0], addr[1] + 1))
            self._latched = True
            if ssrc != self._remote_ssrc:
                self._new_remote_stream(ssrc)
            rx = self._rx
            assert rx is not None
            now = self._now()
            rx.on_packet(sequence, timestamp, len(payload), now)
            self._heard_at = now
            if not self._may_receive:
                return
            if pt == self._audio_pt:
                # Audio nobody consumes (hold music, parked, playback) skips the buffers; the
                # statistics above still saw the packet.
                consumer = self.on_audio
                if consumer is None:
                    return
                if self._on_arrival:
                    reorder = self._reorder
                    reorder.jitter = rx.jitter / self._codec.clock_rate
                    convert = self._to_consumer
                    for frame in reorder.push(sequence, payload, now):
                        consumer(frame if frame is None or convert is None else convert(frame))
                else:
                    self._jitter.push(sequence, timestamp, payload, now)
                return
            try:
                digits = self._dtmf_rx.feed(timestamp, payload, now)
            except MediaError:
                self.malformed += 1
                return
            for digit in digits:
                self._deliver_dtmf(digit.digit)
        except Exception:
            log.exception("RTP datagram from %s dropped", addr)

    def _new_remote_stream(self, ssrc: int) -> None:
        """The peer started a new stream (first packet, or a new SSRC after a transfer or re-INVITE)."""
        old = self._rx
        if old is not None:
            packets, octets, lost = self._prior_received
            self._prior_received = (packets + old.packets, octets + old.octets, lost + max(0, old.cumulative_lost))
            self._reset_inbound_audio()
            self._dtmf_rx = DtmfReceiver()
        self._remote_ssrc = ssrc
        self._rx = ReceiveStatistics(ssrc, self._codec.clock_rate)

    def _reset_inbound_audio(self) -> None:
        self._jitter.reset()
        self._reorder.reset()

    def _deliver_dtmf(self, digit: str) -> None:
        callback = self.on_dtmf
        if callback is None:
            return
        try:
            callback(digit)
        except Exception:
            log.exception("on_dtmf callback failed")

    # --- RTCP -------------------------------------------------------------------------------------

    def _on_rtcp_datagram(self, data: bytes, addr: Address) -> None:
        try:
            self._on_rtcp(data, addr, self._rtcp_socket)
        except Exception:
            log.exception("RTCP datagram from %s dropped", addr)

    def _on_rtcp(self, data: bytes, addr: Address, sock: _SessionSocket | _SrtpSocket) -> None:
        if self._negotiated is None or self._closing:
            self.ignored += 1
            return
        try:
            packets = parse_rtcp(data)
        except RtcpError:
            self.malformed += 1
            return
        now = self._now()
        arrival = ntp_timestamp(self._wall_offset + now)
        for packet in packets:
            if not isinstance(packet, (SenderReport, ReceiverReport)):
                continue
            if self._remote_ssrc is not None and packet.ssrc != self._remote_ssrc:
                continue
            self._rtcp_target = (sock, addr)
            self._rtcp_latched = True
            self._heard_at = now
            if isinstance(packet, SenderReport) and self._rx is not None:
                self._rx.on_sender_report(packet.ntp_timestamp, now)
            for block in packet.reports:
                if block.ssrc == self._rtp.ssrc:
                    rtt = round_trip_time(block, arrival)
                    if rtt is not None:
                        self._rtt = rtt

    def _send_rtcp(self, now: float, *, bye: bool = False) -> None:
        target = self._rtcp_target
        if target is None:
            return
        rx = self._rx
        blocks = (rx.report_block(now),) if rx is not None and rx.received > 0 else ()
        sent = self._rtp.stats
        report: RtcpPacket
        if sent.packets > self._packets_at_last_report:
            report = SenderReport(
                self._rtp.ssrc,
                ntp_timestamp(self._wall_offset + now),
                self._rtp.timestamp,
                sent.packets,
                sent.octets,
                blocks,
            )
        else:
            report = ReceiverReport(self._rtp.ssrc, blocks)
        self._packets_at_last_report = sent.packets
        parts: list[RtcpPacket] = [report, SourceDescription.cname(self._rtp.ssrc, self.cname)]
        if bye:
            parts.append(Bye((self._rtp.ssrc,)))
        sock, addr = target
        sock.send_rtcp(build_rtcp(parts), addr)

    def __repr__(self) -> str:
        return f"<MediaSession port={self._lease.port} remote={self._remote} ssrc={self._rtp.ssrc:08x}>"
