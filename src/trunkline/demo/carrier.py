"""A stand-in carrier: a minimal SIP UAS on loopback that answers every INVITE and plays a melody.

Built straight on the sans-I/O SIP core and a media session, so the demo needs no outside SIP peer.
It is deliberately small — answer, retransmit the 200 until the ACK, answer BYE — not a SIP stack.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from trunkline.media.sdp import SdpError, SdpSession
from trunkline.media.wav import load_wav
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import RtpPortPool
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import WavPlayback
from trunkline.media._audioop import audioop
from trunkline.sip.message import SipParseError, SipRequest, build_response, generate_tag, parse_message

log = logging.getLogger(__name__)


class DemoCarrier(asyncio.DatagramProtocol):
    """``on_level(rms)`` hears the loudness of every frame that reaches the carrier's caller."""

    def __init__(self, clock: MediaClock, rtp_ports: RtpPortPool, voice_wav: bytes,
                 on_level: Callable[[int], None] | None = None) -> None:
        self.clock = clock
        self.rtp_ports = rtp_ports
        self.voice = load_wav(voice_wav)
        self.on_level = on_level
        self.transport: asyncio.DatagramTransport | None = None
        self._calls: dict[str, tuple[MediaSession, bytes]] = {}  # Call-ID -> (media, 200 OK)
        self._unacked: set[str] = set()

    async def start(self, host: str = "127.0.0.1") -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        return self.transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            return
        if isinstance(message, SipRequest):
            self._on_request(message, addr)

    def _on_request(self, request: SipRequest, addr) -> None:
        call_id = request.call_id
        if request.method == "INVITE":
            if call_id in self._calls:  # a retransmission: the answer again
                self._send(self._calls[call_id][1], addr)
            elif call_id not in self._unacked:
                self._unacked.add(call_id)
                asyncio.ensure_future(self._answer(request, addr))  # opening media is the one async step
        elif request.method == "ACK":
            self._unacked.discard(call_id)
        elif request.method == "BYE":
            self._send(build_response(request, 200).to_bytes(), addr)
            media, _ = self._calls.pop(call_id, (None, b""))
            if media is not None:
                media.close()
        elif request.method != "INVITE":
            self._send(build_response(request, 200).to_bytes(), addr)

    async def _answer(self, request: SipRequest, addr) -> None:
        media = await MediaSession.open(self.clock, self.rtp_ports)
        host, port = media.local_address
        try:
            answer, negotiated = SdpSession(host, port, codecs=("PCMU", "PCMA")).receive_offer(request.body)
        except SdpError:
            self._send(build_response(request, 488).to_bytes(), addr)
            self._unacked.discard(request.call_id)
            media.close()
            return
        media.configure(negotiated)
        media.play(WavPlayback(self.voice, loop=True))
        if self.on_level is not None:
            on_level = self.on_level
            media.on_audio = lambda pcm: on_level(audioop.rms(pcm, 2) if pcm else 0)
        ok = build_response(request, 200, to_tag=generate_tag(), body=answer.to_bytes(),
                            headers=[("Contact", f"<sip:carrier@{self._host_port()}>"), ("Content-Type", "application/sdp")])
        self._calls[request.call_id] = (media, ok.to_bytes())
        for delay in (0.5, 1.0, 2.0, 4.0):  # RFC 3261 13.3.1.4: the 2xx until the ACK
            self._send(ok.to_bytes(), addr)
            await asyncio.sleep(delay)
            if request.call_id not in self._unacked:
                return

    def _host_port(self) -> str:
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    def _send(self, data: bytes, addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def close(self) -> None:
        for media, _ in self._calls.values():
            media.close()
        self._calls.clear()
        if self.transport is not None:
            self.transport.close()
