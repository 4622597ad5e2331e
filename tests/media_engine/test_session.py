"""MediaSession over real UDP on 127.0.0.1, with the real media clock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import pytest

from tests.media_engine.conftest import HOST, arrived_rtp, negotiated, random_pool, ticks, wait_until
from tests.media_engine.fake_loop import FakeLoop
from trunkline.media.dtmf import DtmfDetector, ToneDetector
from trunkline.media.errors import MediaError
from trunkline.media.g711 import PCMA, PCMU, codec_by_name, transcoder
from trunkline.media.rtcp import Bye, ReceiverReport, SourceDescription, build_rtcp, parse_rtcp
from trunkline.media.rtp import RtpPacket, build_rtp, is_rtcp, parse_rtp
from trunkline.media.stats import estimate_mos
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import PortPoolExhausted
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import AudioSource, StreamQueue, Tone, WavPlayback

Opener = Callable[..., Awaitable[MediaSession]]


class Listener:
    """An ``on_audio`` consumer counting frames, gaps and frames carrying a given tone."""

    def __init__(self, frequency: float = 1000.0) -> None:
        self.detector = ToneDetector(frequency)
        self.frames = 0
        self.gaps = 0
        self.tone = 0

    def __call__(self, pcm: bytes | None) -> None:
        if pcm is None:
            self.gaps += 1
            return
        assert len(pcm) == 320
        self.frames += 1
        self.tone += self.detector.detect(pcm)


def fan_out(*consumers: Listener) -> Callable[[bytes | None], None]:
    def feed(pcm: bytes | None) -> None:
        for consumer in consumers:
            consumer(pcm)

    return feed


async def test_tone_both_ways(pair: tuple[MediaSession, MediaSession]):
    a, b = pair
    a_hears_1400, a_hears_1000 = Listener(1400.0), Listener(1000.0)
    b_hears_1000, b_hears_1400 = Listener(1000.0), Listener(1400.0)
    a.on_audio = fan_out(a_hears_1400, a_hears_1000)
    b.on_audio = fan_out(b_hears_1000, b_hears_1400)
    a.play(Tone(1000.0))
    b.play(Tone(1400.0))
    await wait_until(lambda: a_hears_1400.tone >= 10 and b_hears_1000.tone >= 10)
    assert a_hears_1000.tone == 0 and b_hears_1400.tone == 0  # each side hears the other, not itself
    assert a.latched and a.remote_address == b.local_address
    assert b.latched and b.remote_address == a.local_address


async def test_pcma(open_session: Opener):
    a, b = await open_session(), await open_session()
    a.configure(negotiated(b.local_address[1], codec="PCMA"))
    b.configure(negotiated(a.local_address[1], codec="PCMA"))
    heard = Listener()
    b.on_audio = heard
    a.play(Tone(1000.0))
    await wait_until(lambda: heard.tone >= 10)


async def test_latches_onto_the_real_source_when_the_sdp_address_is_wrong(open_session: Opener):
    a, b = await open_session(), await open_session()
    wrong = random_pool(2).low  # nothing listens there
    a.configure(negotiated(b.local_address[1]))
    b.configure(negotiated(wrong))
    assert b.remote_address == (HOST, wrong) and not b.latched
    a_hears = Listener(1400.0)
    a.on_audio = a_hears
    a.play(Tone(1000.0))
    b.play(Tone(1400.0))
    await wait_until(lambda: a_hears.tone >= 10)
    assert b.latched and b.remote_address == a.local_address

    # Once latched, another source's stream (different SSRC) is ignored, not followed.
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ignored = b.ignored
        for seq in range(5):
            intruder.sendto(build_rtp(RtpPacket(0, seq, seq * 160, 0x1234, bytes(160))), b.local_address)
        await wait_until(lambda: b.ignored >= ignored + 5)
        assert b.remote_address == a.local_address
    finally:
        intruder.close()


async def test_reconfigure_moves_the_stream_to_a_new_address(open_session: Opener, clock: MediaClock):
    a, b1, b2 = await open_session(), await open_session(), await open_session()
    heard1, heard2 = Listener(), Listener()
    b1.on_audio, b2.on_audio = heard1, heard2
    for b in (b1, b2):
        b.configure(negotiated(a.local_address[1]))
    a.configure(negotiated(b1.local_address[1]))
    a.play(Tone(1000.0))
    await wait_until(lambda: heard1.tone >= 5)
    a.configure(negotiated(b2.local_address[1]))  # re-INVITE with a new c=/m=
    await wait_until(lambda: heard2.tone >= 5)
    assert a.remote_address == b2.local_address
    await ticks(clock, 15)  # b1's jitter buffer drains
    before = heard1.tone
    await ticks(clock, 10)
    assert heard1.tone == before


async def test_rfc4733_digits_arrive_once_each(pair: tuple[MediaSession, MediaSession], clock: MediaClock):
    a, b = pair
    digits: list[str] = []
    b.on_dtmf = digits.append
    a.play(Tone(1000.0))
    a.send_dtmf("159#", duration_ms=80, gap_ms=40)
    await wait_until(lambda: len(digits) >= 4)
    await ticks(clock, 10)
    assert "".join(digits) == "159#"


async def test_inband_dtmf_when_telephone_event_was_not_negotiated(open_session: Opener):
    a, b = await open_session(), await open_session()
    a.configure(negotiated(b.local_address[1], telephone_event_pt=None))
    b.configure(negotiated(a.local_address[1], telephone_event_pt=None))
    detector = DtmfDetector()
    heard: list[str] = []
    events: list[str] = []
    b.on_dtmf = events.append

    def listen(pcm: bytes | None) -> None:
        if pcm is not None and (digit := detector.process(pcm)) is not None:
            heard.append(digit)

    b.on_audio = listen
    a.send_dtmf("42")
    await wait_until(lambda: len(heard) >= 2)
    assert heard == ["4", "2"]
    assert events == []  # no telephone-events on the wire


async def test_send_dtmf_needs_negotiated_media(open_session: Opener):
    session = await open_session()
    with pytest.raises(MediaError):
        session.send_dtmf("1")


async def test_muted_sends_silence_not_audio(pair: tuple[MediaSession, MediaSession]):
    a, b = pair
    heard = Listener()
    b.on_audio = heard
    a.muted = True
    a.play(Tone(1000.0))
    await wait_until(lambda: heard.frames >= 25)
    assert heard.tone == 0
    a.muted = False
    await wait_until(lambda: heard.tone >= 5)


async def test_nothing_is_sent_without_a_source_or_when_direction_forbids(
    pair: tuple[MediaSession, MediaSession], clock: MediaClock
):
    a, b = pair
    await ticks(clock, 5)
    assert a.stats().packets_sent == 0 and b.stats().packets_received == 0
    a.configure(negotiated(b.local_address[1], local_direction="recvonly"))  # put on hold by the peer
    a.play(Tone(1000.0))
    await ticks(clock, 10)
    assert a.stats().packets_sent == 0
    a.configure(negotiated(b.local_address[1]))
    await wait_until(lambda: b.stats().packets_received >= 5)


async def test_playback_ends_with_a_callback_after_its_last_frame(
    pair: tuple[MediaSession, MediaSession], clock: MediaClock
):
    a, b = pair
    finished: list[AudioSource] = []
    a.on_source_finished = finished.append
    prompt = WavPlayback(bytes(320 * 5))
    a.play(prompt)
    await wait_until(lambda: bool(finished))
    assert finished == [prompt] and a.source is None
    await wait_until(lambda: b.stats().packets_received >= 5)
    await ticks(clock, 5)
    assert b.stats().packets_received == 5 == a.stats().packets_sent


async def test_stream_queue_underrun_is_filled_with_silence_and_marks_fire(
    pair: tuple[MediaSession, MediaSession], clock: MediaClock
):
    a, b = pair
    marks: list[str] = []
    queue = StreamQueue(on_mark=marks.append)
    a.play(queue)
    queue.push(bytes(320 * 3))
    queue.push_mark("end-of-sentence")
    await wait_until(lambda: marks == ["end-of-sentence"])
    sent = a.stats().packets_sent
    assert sent >= 3
    await ticks(clock, 5)
    assert a.stats().packets_sent >= sent + 4  # the empty queue does not stop the RTP stream


class Relay(asyncio.DatagramProtocol):
    """Forwards RTP between a caller and ``target``, dropping every tenth packet toward the target."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.caller: tuple[str, int] | None = None
        self.forwarded: list[int] = []
        self.dropped: list[int] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr == self.target:
            if self.caller is not None:
                self.transport.sendto(data, self.caller)
            return
        self.caller = addr
        if is_rtcp(data):
            return
        seq = parse_rtp(data).sequence
        if (len(self.forwarded) + len(self.dropped)) % 10 == 9:
            self.dropped.append(seq)
            return
        self.forwarded.append(seq)
        self.transport.sendto(data, self.target)


async def test_stats_count_traffic_and_loss_through_a_lossy_relay(open_session: Opener, clock: MediaClock):
    a, b = await open_session(), await open_session()
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(lambda: Relay(b.local_address), local_addr=(HOST, 0))
    try:
        relay_port = transport.get_extra_info("sockname")[1]
        a.configure(negotiated(relay_port))
        b.configure(negotiated(a.local_address[1]))  # b latches onto the relay
        heard = Listener()
        b.on_audio = heard
        a.play(Tone(1000.0))
        await wait_until(lambda: len(relay.dropped) >= 4 and heard.tone >= 10)
        a.play(None)
        await ticks(clock, 5)
        assert b.remote_address == ("127.0.0.1", relay_port)
        # RFC 3550 counts loss from the second packet (the first is probation) to the highest seen.
        base, highest = relay.forwarded[1], max(relay.forwarded)
        expected_lost = sum(base < s < highest for s in relay.dropped)
        sent, received = a.stats(), b.stats()
        assert received.packets_lost == expected_lost > 0
        assert received.packets_received == len(relay.forwarded)
        assert sent.packets_sent == len(relay.forwarded) + len(relay.dropped)
        assert sent.bytes_sent == 160 * sent.packets_sent
        assert received.bytes_received == 160 * received.packets_received
        assert received.jitter_ms >= 0.0
        assert 1.0 < received.estimated_mos < estimate_mos(0.0)
        assert a.stats().estimated_mos == 0.0  # a received nothing: nothing measured
    finally:
        transport.close()


async def test_rtcp_reports_give_a_round_trip_time(open_session: Opener):
    a, b = await open_session(rtcp_interval=0.1), await open_session(rtcp_interval=0.1)
    a.configure(negotiated(b.local_address[1]))
    b.configure(negotiated(a.local_address[1]))
    a.play(Tone(1000.0))
    b.play(Tone(1000.0))
    await wait_until(lambda: a.rtt is not None and b.rtt is not None)
    assert 0.0 <= a.rtt < 1.0  # type: ignore[operator]


async def test_malformed_datagrams_are_counted_and_dropped(pair: tuple[MediaSession, MediaSession]):
    a, b = pair
    heard = Listener()
    b.on_audio = heard
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for data in (b"\x00", b"\x40" + bytes(20), b"\x80\x00\x00", b"\x80\xc8\x00\x10", b"\x80\x65" + bytes(11)):
            junk.sendto(data, b.local_address)
        await wait_until(lambda: b.malformed >= 5)
    finally:
        junk.close()
    assert not b.latched  # junk never steers where the stream goes
    a.play(Tone(1000.0))
    await wait_until(lambda: heard.tone >= 5)  # still healthy


async def test_close_says_bye_and_releases_the_port(clock: MediaClock):
    pool = random_pool(4)
    first = await MediaSession.open(clock, pool)
    second = await MediaSession.open(clock, pool)
    with pytest.raises(PortPoolExhausted):
        await MediaSession.open(clock, pool)
    peer_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_rtcp.bind((HOST, 0))
    peer_rtcp.setblocking(False)
    port = first.local_address[1]
    try:
        first.configure(negotiated(peer_rtcp.getsockname()[1] - 1))  # RTCP goes to the RTP port + 1
        first.close()
        first.close()
        await first.wait_closed()
        assert first.closed and first not in clock
        third = await MediaSession.open(clock, pool)
        assert third.local_address[1] == port
        third.close()
        await third.wait_closed()
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer_rtcp, 2048), 5)
        kinds = [type(packet) for packet in parse_rtcp(data)]
        assert kinds == [ReceiverReport, SourceDescription, Bye]
    finally:
        peer_rtcp.close()
        second.close()
        await second.wait_closed()
    with pytest.raises(MediaError):
        first.configure(negotiated(1000))


async def test_new_remote_ssrc_restarts_the_stream_and_muxed_rtcp_is_answered_in_kind(
    open_session: Opener, clock: MediaClock
):
    session = await open_session(rtcp_interval=0.05)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.setblocking(False)
    try:
        session.configure(negotiated(peer.getsockname()[1]))
        heard = Listener()
        session.on_audio = heard
        tone = Tone(1000.0)
        counts = []
        # A transfer behind the peer: a new SSRC whose sequence numbers overlap the old stream's.
        for ssrc, first_seq in ((0xAAAA, 100), (0xBBBB, 105)):
            before = heard.tone
            for k in range(20):
                payload = PCMU.encode(tone.read())
                peer.sendto(build_rtp(RtpPacket(0, first_seq + k, 160 * k, ssrc, payload)), session.local_address)
                await ticks(clock, 1)
            await ticks(clock, 10)
            counts.append(heard.tone - before)
            assert session.remote_ssrc == ssrc
        assert session.stats().packets_received == 40
        # Had the jitter buffer kept the old stream's position, only seqs 120-124 would have played.
        assert counts[1] >= 12
        # An RR from the peer's RTP port (rtcp-mux) moves our RTCP there too.
        peer.sendto(build_rtcp([ReceiverReport(0xBBBB)]), session.local_address)
        loop = asyncio.get_running_loop()

        async def next_rtcp() -> bytes:
            while True:
                data = await loop.sock_recv(peer, 2048)
                if is_rtcp(data):
                    return data

        report = parse_rtcp(await asyncio.wait_for(next_rtcp(), 5))[0]
        assert isinstance(report, ReceiverReport) and report.reports[0].ssrc == 0xBBBB
    finally:
        peer.close()


async def test_a_frame_sent_ahead_replaces_the_next_tick(pair: tuple[MediaSession, MediaSession], clock: MediaClock):
    a, _ = pair
    a.play(WavPlayback(bytes(320 * 10)))
    await ticks(clock, 2)
    before = a.stats().packets_sent
    a.send_next_frame_now()
    assert a.stats().packets_sent == before + 1  # on the wire at once, not at the next tick
    a.send_next_frame_now()
    assert a.stats().packets_sent == before + 1  # only one frame may be ahead
    await wait_until(lambda: a.source is None)
    assert a.stats().packets_sent == 10  # the tick it replaced sent nothing: no extra packet, no burst


@dataclass
class HandClockedLeg:
    fake: FakeLoop
    clock: MediaClock
    session: MediaSession
    queue: StreamQueue
    peer: socket.socket


@pytest.fixture
async def hand_clocked(pool) -> AsyncIterator[HandClockedLeg]:
    """A session on a clock driven by hand, playing a live µ-law queue to a plain socket."""
    fake = FakeLoop(now=0.0)
    clock = MediaClock(cast(asyncio.AbstractEventLoop, fake), timer=fake.time, interval=0.02, max_lag_ticks=3)
    session = await MediaSession.open(clock, pool)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.setblocking(False)
    session.configure(negotiated(peer.getsockname()[1]))
    queue = StreamQueue(codec=PCMU, live=True)
    session.play(queue)
    yield HandClockedLeg(fake, clock, session, queue, peer)
    peer.close()
    session.close()
    await session.wait_closed()


async def test_a_live_source_that_runs_dry_mid_stream_gets_its_slot_held_for_a_late_frame(hand_clocked):
    """An agent frame a few ms late goes out then, in its own slot, instead of a frame late for good."""
    fake, session, queue, peer = hand_clocked.fake, hand_clocked.session, hand_clocked.queue, hand_clocked.peer
    frames = [bytes([k]) * 160 for k in range(1, 5)]
    queue.push(frames[0])
    fake.run_next()  # frame 1
    fake.run_next()  # dry in mid-stream: the slot is held
    late = await arrived_rtp(peer)
    assert [p.payload for p in late] == [frames[0]]
    queue.push(frames[1])
    session.send_late_frame()  # e.g. 3 ms after the tick: sent now, in the held slot
    queue.push(frames[2])
    fake.run_next()  # frame 3 on time
    fake.run_next()  # dry again; this time nothing comes
    fake.run_next()  # the held slot passes unsent; silence from here on
    packets = await arrived_rtp(peer)
    assert [p.payload for p in packets] == [frames[1], frames[2], PCMU.silence(160)]
    stamps = [p.timestamp for p in late + packets]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [160, 160, 320]  # one slot skipped, none added
    assert packets[-1].marker  # a new talkspurt after the gap
    assert session.stats().packets_sent == 4  # no extra packet anywhere


async def test_intervals_the_clock_skips_move_the_timestamp_on_and_drop_a_live_sources_stale_audio(hand_clocked):
    fake, clock, session, queue = hand_clocked.fake, hand_clocked.clock, hand_clocked.session, hand_clocked.queue
    frames = [bytes([k]) * 160 for k in range(1, 12)]
    for frame in frames[:10]:
        queue.push(frame)
    fake.run_next()  # frame 1
    fake.run_next(delay=0.205)  # frame 2, ten intervals late: the clock skips the next nine
    assert clock.skipped == 9
    fake.run_next()
    assert session.stale_frames_dropped == 8  # frames 3-10 were for the skipped intervals
    assert queue.queued_frames == 0
    queue.push(frames[10])
    session.send_late_frame()
    packets = await arrived_rtp(hand_clocked.peer)
    assert [p.payload for p in packets] == [frames[0], frames[1], frames[10]]
    assert packets[2].timestamp - packets[1].timestamp == 160 * 10  # on the wall clock: a gap, not lateness


async def test_frames_delivered_on_arrival_do_not_wait_for_the_clock(pool):
    stopped = MediaClock(interval=3600.0)  # never ticks during the test: only arrival can deliver
    session = await MediaSession.open(stopped, pool)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    try:
        session.configure(negotiated(peer.getsockname()[1]))
        heard = Listener()
        session.on_audio = heard
        tone = Tone(1000.0)

        def send(seq: int) -> None:
            payload = PCMU.encode(tone.read())
            peer.sendto(build_rtp(RtpPacket(0, seq, 160 * seq, 0xCAFE, payload)), session.local_address)

        send(0)
        await wait_until(lambda: session.stats().packets_received == 1)
        assert heard.frames == 0  # the jitter buffer waits for the clock
        session.deliver_on_arrival = True
        for seq in (1, 3, 2):  # 3 overtakes 2 and waits for it
            send(seq)
        await wait_until(lambda: heard.frames == 3)
        assert heard.tone == 3 and heard.gaps == 0
        assert session.reorder_buffer.delivered == 3
    finally:
        peer.close()
        session.close()
        await session.wait_closed()


@pytest.mark.parametrize("call_codec", ["PCMU", "PCMA"])
async def test_mu_law_passes_through_without_pcm_both_ways(open_session: Opener, call_codec: str):
    """An agent speaking µ-law: its queue's bytes are the RTP payload, and the caller's payload is
    what on_audio gets; on an A-law call both go through the byte table instead."""
    codec = codec_by_name(call_codec)
    session = await open_session()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.setblocking(False)
    try:
        session.configure(negotiated(peer.getsockname()[1], codec=call_codec))
        heard: list[bytes | None] = []
        session.on_audio = heard.append
        session.consumer_codec = PCMU
        session.deliver_on_arrival = True
        agent_speech = bytes(range(160))
        queue = StreamQueue(codec=PCMU)
        queue.push(agent_speech)
        session.play(queue)
        packet = parse_rtp(await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 2048), 10))
        assert packet.payload == (agent_speech if codec is PCMU else transcoder(PCMU, PCMA)(agent_speech))

        caller_payload = bytes(range(96, 256))
        peer.sendto(build_rtp(RtpPacket(codec.payload_type, 1, 160, 0xCAFE, caller_payload)), session.local_address)
        await wait_until(lambda: caller_payload_heard(heard))
        assert caller_payload_heard(heard) == (
            caller_payload if codec is PCMU else transcoder(PCMA, PCMU)(caller_payload)
        )
        session.consumer_codec = None  # back to PCM16 for a consumer that wants it
        peer.sendto(build_rtp(RtpPacket(codec.payload_type, 2, 320, 0xCAFE, caller_payload)), session.local_address)
        await wait_until(lambda: len([f for f in heard if f is not None]) == 2)
        assert [f for f in heard if f is not None][-1] == codec.decode(caller_payload)
    finally:
        peer.close()


def caller_payload_heard(heard: list[bytes | None]) -> bytes | None:
    return next((frame for frame in heard if frame is not None), None)


async def test_far_end_silence_for_rtp_timeout_reports_a_media_timeout_once(open_session: Opener, clock: MediaClock):
    a = await open_session()
    b = await open_session(rtp_timeout=0.5)
    a.configure(negotiated(b.local_address[1]))
    b.configure(negotiated(a.local_address[1]))
    timeouts: list[float] = []
    b.on_media_timeout = timeouts.append
    a.play(Tone(1000.0))
    await ticks(clock, 50)  # a second of audio: longer than the timeout, and none reported
    assert timeouts == [] and b.stats().packets_received > 20
    a.play(None)  # the far end goes quiet
    await wait_until(lambda: timeouts)
    await ticks(clock, 10)
    assert len(timeouts) == 1 and timeouts[0] >= 0.5


async def test_a_held_or_one_way_stream_is_watched_with_the_hold_timeout(open_session: Opener, clock: MediaClock):
    a = await open_session()
    b = await open_session(rtp_timeout=0.3, rtp_hold_timeout=0.0)
    timeouts: list[float] = []
    b.on_media_timeout = timeouts.append
    # The far end holds us (it offered sendonly; we answered recvonly) and sends nothing.
    b.configure(negotiated(a.local_address[1], remote_direction="sendonly", local_direction="recvonly"))
    await ticks(clock, 40)
    assert timeouts == []
    b.configure(negotiated(a.local_address[1]))  # resumed: silence now counts
    await wait_until(lambda: timeouts)
