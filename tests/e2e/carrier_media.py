"""A carrier's RTP endpoint played by a test, for SIPp scenarios whose SDP names it."""

from __future__ import annotations

import asyncio
import struct


class CarrierMedia(asyncio.DatagramProtocol):
    """One carrier media address: records the RTP Trunkline sends it and, once
    ``talking``, streams ``payload`` (PCMU) every 20 ms to ``gateway``, which is wherever
    Trunkline sends from unless the test sets it (before the answer Trunkline sends nothing)."""

    def __init__(self, ssrc: int, payload: bytes) -> None:
        self.ssrc = ssrc
        self.payload = payload
        self.received: list[int] = []  # payload types, in arrival order
        self.payloads: list[bytes] = []  # and what they carried
        self.gateway: tuple[str, int] | None = None
        self.talking = False
        self._seq = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._sender = asyncio.ensure_future(self._talk())

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) > 12 and data[1] & 0x7F in (0, 8):
            self.received.append(data[1] & 0x7F)
            self.payloads.append(data[12:])
            self.gateway = addr

    async def _talk(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            if self.talking and self.gateway is not None:
                self._seq += 1
                header = struct.pack("!BBHII", 0x80, 0, self._seq & 0xFFFF, self._seq * 160, self.ssrc)
                self.transport.sendto(header + self.payload, self.gateway)

    def close(self) -> None:
        self._sender.cancel()
        self.transport.close()


async def carrier_media(host: str, port: int, ssrc: int, payload: bytes = b"\xff" * 160) -> CarrierMedia:
    """A :class:`CarrierMedia` on ``host:port`` (µ-law silence unless ``payload`` says otherwise)."""
    _, media = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: CarrierMedia(ssrc, payload), local_addr=(host, port))
    return media
