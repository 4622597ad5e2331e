"""Helpers for end-to-end call tests: a gateway whose trunk points at a test peer, and a watcher
that collects each call's CallEvents through the SDK, as an application would."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from tests.conftest import client_for, wait_until
from trunkline.enums import EventType
from trunkline.media.g711 import pcmu_encode
from trunkline.sdk import CallEvent, Client


class CallWatch:
    """Subscribes before dialling so no event is missed; one list of events per call_sid."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: dict[str, list[CallEvent]] = defaultdict(list)
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.client.events():
            self.events[event.call_sid].append(event)
            self._changed.set()

    async def first(self, call_sid: str, matches, timeout: float = 20.0) -> CallEvent:
        """The call's first event for which ``matches(event)`` holds, once it has arrived."""
        async def wait() -> CallEvent:
            while True:
                for event in self.events.get(call_sid, ()):
                    if matches(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def until(self, call_sid: str, status: str, timeout: float = 20.0) -> CallEvent:
        return await self.first(call_sid, lambda event: event.status == status, timeout)

    async def hangup(self, call_sid: str, timeout: float = 30.0) -> CallEvent:
        return await self.first(call_sid, lambda event: event.event_type == EventType.CHANNEL_HANGUP_COMPLETE, timeout)

    def statuses(self, call_sid: str) -> list[str]:
        return [e.status for e in self.events.get(call_sid, ())]

    async def answered_then_ended(self, to: str, trunk_id: str, answer_timeout: float = 20.0) -> CallEvent:
        """Dial, wait for the answer, hang up; the call's hangup event."""
        call = await self.client.dial(to, trunk_id=trunk_id)
        await self.until(call.call_sid, "ANSWERED", answer_timeout)
        await self.client.terminate(call.call_sid)
        return await self.hangup(call.call_sid)

    async def close(self) -> None:
        self._task.cancel()


async def watched_client(gateway):
    """An SDK client with a live event subscription (open before the first dial)."""
    client = client_for(gateway)
    await client.open()
    watch = CallWatch(client)
    await wait_until(lambda: gateway.events._by_client.get(("local", client.client_id)), "the event subscription")
    return client, watch


class RtpTap(asyncio.DatagramProtocol):
    """A relay between Trunkline and a SIPp RTP echo (whose SDP names the tap): records what Trunkline
    sends to the carrier, with arrival times, and can hold back the echo (a caller who is silent),
    put ``voice`` (an audio source, e.g. a Tone) in the echo's place (a caller who speaks), drop
    every ``drop_every``-th packet on the way out, and delay echoes by a seeded random choice of
    ``echo_delays`` (seconds), so statistics have a network to measure."""

    def __init__(self, echo_port: int, drop_every: int = 0, echo_delays: tuple[float, ...] = ()) -> None:
        self.echo = ("127.0.0.1", echo_port)
        self.gateway = None
        self.sent: list[tuple[float, bytes]] = []  # (loop time, RTP payload) from Trunkline
        self.events: list[bytes] = []  # RTP payloads of any other type from Trunkline (RFC 4733 key presses)
        self.pass_echo = True
        self.voice = None
        self.drop_every = drop_every
        self.echo_delays = echo_delays
        self.rng = random.Random(7)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if addr == self.echo:
            if self.gateway is not None and self.pass_echo:
                if self.voice is not None and len(data) == 12 + 160 and data[1] & 0x7F == 0:
                    data = data[:12] + pcmu_encode(self.voice.read())
                delay = self.rng.choice(self.echo_delays) if self.echo_delays else 0
                if delay:
                    asyncio.get_running_loop().call_later(delay, self.transport.sendto, data, self.gateway)
                else:
                    self.transport.sendto(data, self.gateway)
            return
        self.gateway = addr
        if len(data) > 12 and data[1] & 0x7F in (0, 8):
            self.sent.append((asyncio.get_running_loop().time(), data[12:]))
            if self.drop_every and len(self.sent) % self.drop_every == 0:
                return
        elif len(data) > 12:
            self.events.append(data[12:])
        self.transport.sendto(data, self.echo)


async def tapped_carrier(peers, **tap_options):
    """SIPp answering with RTP echo behind an :class:`RtpTap`; returns (sipp, tap, transport)."""
    from tests.peers.sipp import free_udp_port, uas

    tap_port = free_udp_port()
    sipp = await peers(uas("uas_answer_relayed", rtp_echo=True, timeout_s=60, scenario_vars={"RTP_PORT": str(tap_port)}))
    transport, tap = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: RtpTap(sipp.media_port, **tap_options), local_addr=("127.0.0.1", tap_port))
    return sipp, tap, transport


def carrier(port: int, **trunk: object) -> dict:
    """Gateway config overrides: the ``carrier`` trunk aimed at a peer on 127.0.0.1:``port``."""
    return {"trunks": [{"id": "carrier", "host": "127.0.0.1", "port": port, **trunk}]}
