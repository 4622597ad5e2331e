"""Per-stream RTP statistics (RFC 3550 A.1, A.3, A.8) and an E-model MOS estimate (ITU-T G.107).

The receive side follows the RFC's reference algorithms closely because the numbers end up in RTCP
reports that the far end's equipment interprets; inventing our own loss arithmetic would make our
reports disagree with every other stack's. Time comes in as a float ``now`` in seconds from any
monotonic origin; only differences are used.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.media.rtcp import ReportBlock, compact_ntp

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

BPL_G711 = 4.3
"""G.113 packet-loss robustness of G.711 without concealment."""
BPL_G711_PLC = 25.1
"""G.113 packet-loss robustness of G.711 with packet-loss concealment (Appendix I)."""


class SendStatistics:
    """Counters for what we transmit; octets are RTP payload octets, as an SR's octet count wants."""

    __slots__ = ("packets", "octets")

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0

    def record(self, payload_octets: int) -> None:
        self.packets += 1
        self.octets += payload_octets


class ReceiveStatistics:
    """Reception state for one SSRC: sequence validation, loss and interarrival jitter.

    ``packets``/``octets`` count everything fed in, while loss uses the RFC's probation-validated
    ``received`` so a stray packet from an old stream cannot skew the loss figure.
    """

    __slots__ = (
        "ssrc",
        "clock_rate",
        "packets",
        "octets",
        "max_seq",
        "cycles",
        "base_seq",
        "bad_seq",
        "probation",
        "received",
        "expected_prior",
        "received_prior",
        "jitter",
        "_started",
        "_last_arrival",
        "_last_timestamp",
        "_lsr",
        "_lsr_time",
    )

    def __init__(self, ssrc: int, clock_rate: int = 8000) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.packets = 0
        self.octets = 0
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = MIN_SEQUENTIAL
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._started = False
        self._last_arrival = 0.0
        self._last_timestamp = 0
        self._lsr = 0
        self._lsr_time = 0.0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _update_seq_unusual(self, seq: int, udelta: int) -> bool:
        """RFC 3550 A.1's update_seq for the cases :meth:`on_packet` leaves to it: probation, and a
        packet too far from the highest seen (a jump, or one arriving very late)."""
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
            # Two sequential packets after a big jump: the sender restarted, so we do too.
            self._init_seq(seq)
        self.received += 1
        return True

    def on_packet(self, seq: int, timestamp: int, payload_octets: int, now: float) -> bool:
        """Account one arriving packet; False means it failed sequence validation (probation/jump)."""
        self.packets += 1
        self.octets += payload_octets
        if not self._started:
            self._started = True
            self.max_seq = (seq - 1) & 0xFFFF
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation or udelta >= MAX_DROPOUT:
            valid = self._update_seq_unusual(seq, udelta)
        else:  # A.1's usual case, here rather than in a call per packet: in order, or a little late
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self.received += 1
            valid = True
        if valid:
            if self.received > 1:
                # A.8 jitter, with the timestamp difference taken modulo 2^32 so a wrap is harmless.
                ts_delta = (timestamp - self._last_timestamp) & 0xFFFFFFFF
                if ts_delta >= 0x80000000:
                    ts_delta -= 0x100000000
                d = (now - self._last_arrival) * self.clock_rate - ts_delta
                self.jitter += (abs(d) - self.jitter) / 16.0
            self._last_arrival = now
            self._last_timestamp = timestamp
        return valid

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember the peer's last SR so our next report block carries LSR/DLSR for its RTT."""
        self._lsr = compact_ntp(ntp_timestamp)
        self._lsr_time = now

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.received == 0:
            return 0
        return self.extended_max_seq - self.base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Signed, as RFC 3550 defines it: duplicates can push it below zero."""
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    def report_block(self, now: float) -> ReportBlock:
        """Build the next report block and start a new loss interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        dlsr = int((now - self._lsr_time) * 65536) if self._lsr else 0
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.cumulative_lost,
            highest_sequence=self.extended_max_seq & 0xFFFFFFFF,
            jitter=int(self.jitter),
            last_sr=self._lsr,
            delay_since_last_sr=max(0, dlsr),
        )


def r_factor(
    loss_ratio: float,
    jitter_ms: float = 0.0,
    one_way_delay_ms: float = 0.0,
    *,
    ie: float = 0.0,
    bpl: float = BPL_G711_PLC,
    burst_ratio: float = 1.0,
) -> float:
    """Simplified G.107 transmission rating.

    R = 93.2 - Id - Ie_eff with default G.107 values for everything but delay and loss. Jitter
    enters as delay, because a jitter buffer that absorbs it adds about twice the jitter to the mouth
    to ear path: d = one_way_delay + 2 * jitter. Id uses the usual two-segment fit of the G.107 delay
    curve (0.024 d, plus 0.11 (d - 177.3) beyond 177.3 ms).
    """
    d = one_way_delay_ms + 2.0 * jitter_ms
    idd = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, min(1.0, loss_ratio)) * 100.0
    ie_eff = ie + (95.0 - ie) * ppl / (ppl / burst_ratio + bpl)
    return 93.2 - idd - ie_eff


def mos_from_r(r: float) -> float:
    """G.107 Annex B mapping of R to estimated conversational MOS."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(
    loss_ratio: float,
    jitter_ms: float = 0.0,
    one_way_delay_ms: float = 0.0,
    *,
    plc: bool = True,
) -> float:
    """MOS for a G.711 stream (Ie 0) from loss, jitter and one-way delay."""
    return mos_from_r(r_factor(loss_ratio, jitter_ms, one_way_delay_ms, bpl=BPL_G711_PLC if plc else BPL_G711))


@dataclass(frozen=True, slots=True)
class MediaStatsSnapshot:
    """Call-quality numbers for one call leg; bytes are RTP payload octets, not datagram sizes."""

    packets_sent: int
    packets_received: int
    packets_lost: int
    bytes_sent: int
    bytes_received: int
    jitter_ms: float
    estimated_mos: float


def snapshot(
    received: ReceiveStatistics | None,
    sent: SendStatistics | None,
    *,
    one_way_delay_ms: float = 0.0,
    plc: bool = True,
) -> MediaStatsSnapshot:
    """Summarise a leg; the MOS uses whole-call loss, so one bad second does not swing it.

    ``one_way_delay_ms`` is the caller's best knowledge (RTT/2 from RTCP plus buffering); it defaults
    to zero, which makes the MOS an upper bound when nothing better is known. Nothing received means
    nothing measured: jitter and MOS are then 0 (PROTOCOL.md §6), not the perfect score that zero
    loss and zero jitter would compute to.
    """
    packets_received = bytes_received = lost = 0
    jitter_ms = mos = 0.0
    if received is not None and received.packets:
        packets_received = received.packets
        bytes_received = received.octets
        lost = max(0, received.cumulative_lost)
        jitter_ms = received.jitter_ms
        expected = received.expected
        loss_ratio = lost / expected if expected > 0 else 0.0
        mos = estimate_mos(loss_ratio, jitter_ms, one_way_delay_ms, plc=plc)
    return MediaStatsSnapshot(
        packets_sent=sent.packets if sent is not None else 0,
        packets_received=packets_received,
        packets_lost=lost,
        bytes_sent=sent.octets if sent is not None else 0,
        bytes_received=bytes_received,
        jitter_ms=jitter_ms,
        estimated_mos=mos,
    )
