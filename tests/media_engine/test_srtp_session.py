"""MediaSession with SRTP (SDES keys) against a loopback peer that speaks SRTP through pylibsrtp."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace

import pytest

from tests.media_engine.conftest import HOST, negotiated, wait_until
from trunkline.media.dtmf import ToneDetector
from trunkline.media.errors import MediaError
from trunkline.media.g711 import PCMU
from trunkline.media.rtcp import SenderReport, parse_rtcp
from trunkline.media.rtp import RtpSender, parse_rtp
from trunkline.media.srtp import SdesKey, SrtpContext
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import Tone

Opener = Callable[..., Awaitable[MediaSession]]


class SrtpPeer:
    """A far end on two plain UDP sockets (RTP, RTP + 1) that encrypts with its key and decrypts with ours."""

    def __init__(self, our_key: SdesKey) -> None:
        self.key = SdesKey.generate()
        self.context = SrtpContext(self.key, our_key)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        port = self.rtp.getsockname()[1]
        try:
            self.rtcp.bind((HOST, port + 1))
        except OSError:
            self.close()
            pytest.skip("port after the peer's RTP port is taken")
        self.port = port
        self.sender = RtpSender(0x5EC0DE, PCMU.payload_type)
        self.tone = Tone(1400.0)

    def audio_packet(self) -> bytes:
        return self.sender.packetize(PCMU.encode(self.tone.read()))

    def send(self, packet: bytes, to: tuple[str, int]) -> None:
        self.rtp.sendto(packet, to)

    def received(self, sock: socket.socket) -> Iterator[bytes]:
        sock.setblocking(False)
        while True:
            try:
                yield sock.recv(2048)
            except BlockingIOError:
                return

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


async def srtp_session(open_session: Opener, **kwargs: object) -> tuple[MediaSession, SrtpPeer]:
    session = await open_session(**kwargs)
    session.srtp_key = SdesKey.generate()
    peer = SrtpPeer(session.srtp_key)
    session.configure(replace(negotiated(peer.port), remote_crypto=peer.key))
    return session, peer


async def test_audio_and_rtcp_are_encrypted_both_ways(open_session: Opener):
    session, peer = await srtp_session(open_session, rtcp_interval=0.1)
    try:
        detector = ToneDetector(1400.0)
        heard: list[bool] = []
        session.on_audio = lambda pcm: heard.append(pcm is not None and detector.detect(pcm))
        session.play(Tone(1000.0))
        for _ in range(20):
            peer.send(peer.context.protect(peer.audio_packet()), session.local_address)
            await asyncio.sleep(0.02)
        await wait_until(lambda: sum(heard) >= 10, "the peer's tone, decrypted")
        wire = list(peer.received(peer.rtp))
        assert wire and all(len(p) == 12 + 160 + 10 for p in wire)  # header, G.711 frame, 80-bit tag
        clear = [parse_rtp(peer.context.unprotect(p)) for p in wire]
        assert all(PCMU.encode(PCMU.decode(p.payload)) == p.payload for p in clear)
        assert all(parse_rtp(p).payload != c.payload for p, c in zip(wire, clear))  # not sent in clear
        peer.rtcp.setblocking(False)
        srtcp = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer.rtcp, 2048), 5)
        assert any(isinstance(p, SenderReport) for p in parse_rtcp(peer.context.unprotect_rtcp(srtcp)))
        stats = session.stats()
        assert stats.packets_received == 20 and stats.bytes_received == 20 * 160  # RTP payload, as without SRTP
        assert session.srtp_refused == 0
    finally:
        peer.close()


async def test_forged_replayed_and_plain_packets_are_dropped_and_counted(open_session: Opener):
    session, peer = await srtp_session(open_session)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        first = peer.context.protect(peer.audio_packet())
        peer.send(first, session.local_address)
        await wait_until(lambda: session.stats().packets_received == 1)
        tampered = bytearray(peer.context.protect(peer.audio_packet()))
        tampered[20] ^= 1
        peer.send(bytes(tampered), session.local_address)
        peer.send(first, session.local_address)  # a replay
        stranger.sendto(peer.audio_packet(), session.local_address)  # plain RTP, as from a plain carrier
        peer.rtcp.sendto(b"\x80\xc9\x00\x01" + bytes(4), (HOST, session.local_address[1] + 1))  # plain RTCP
        await wait_until(lambda: session.srtp_refused == 4, "four refusals")
        assert session.stats().packets_received == 1
        assert session.remote_address == peer.rtp.getsockname()  # the stranger did not steer the stream
        assert session.malformed == session.ignored == 0
    finally:
        stranger.close()
        peer.close()


async def test_a_reinvite_with_the_same_keys_keeps_the_replay_window_and_new_keys_take_over(open_session: Opener):
    session, peer = await srtp_session(open_session)
    try:
        first = peer.context.protect(peer.audio_packet())
        peer.send(first, session.local_address)
        await wait_until(lambda: session.stats().packets_received == 1)
        session.configure(replace(negotiated(peer.port), remote_crypto=peer.key))
        peer.send(first, session.local_address)
        await wait_until(lambda: session.srtp_refused == 1, "the replay refused after the re-INVITE")
        new_key = SdesKey.generate()
        session.configure(replace(negotiated(peer.port), remote_crypto=new_key))
        peer.send(SrtpContext(new_key, session.srtp_key).protect(peer.audio_packet()), session.local_address)
        await wait_until(lambda: session.stats().packets_received == 2, "a packet under the far end's new key")
    finally:
        peer.close()


async def test_srtp_needs_our_key_and_cannot_be_dropped_mid_call(open_session: Opener):
    plain = await open_session()
    with pytest.raises(MediaError, match="srtp_key"):
        plain.configure(replace(negotiated(9000), remote_crypto=SdesKey.generate()))
    session, peer = await srtp_session(open_session)
    peer.close()
    with pytest.raises(MediaError, match="mid-call"):
        session.configure(negotiated(peer.port))


async def test_a_closed_srtp_session_is_freed_without_the_cycle_collector(clock: MediaClock, pool):
    session = await MediaSession.open(clock, pool)
    session.srtp_key = SdesKey.generate()
    session.configure(replace(negotiated(9000), remote_crypto=SdesKey.generate()))
    session.close()
    await session.wait_closed()
    gc.collect()
    gc.disable()
    try:
        ref = weakref.ref(session)
        del session
        assert ref() is None
    finally:
        gc.enable()
