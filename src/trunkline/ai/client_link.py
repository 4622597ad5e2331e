"""The SDK client as the agent (PROTOCOL.md §6 Audio): caller audio goes out as AudioFrames to the
connections subscribed with the call's ``client_id``; their AudioFrames for the call are played.

The RPC layer owns the connections; it hands inbound frames to :meth:`ClientAudioHub.deliver` and
offers each connection as an outlet with ``send_audio``. Nothing here knows the wire format.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol, Sequence

from trunkline.ai.events import AgentAudio, AgentEvent
from trunkline.ai.link import AgentUnreachable
from trunkline.media.g711 import Resampler, pcma_decode, pcmu_decode

log = logging.getLogger(__name__)


class AudioOutlet(Protocol):
    def send_audio(self, call_sid: str, payload: bytes, codec: str, sequence_number: int, end_of_stream: bool) -> bool: ...


class ClientAudioHub:
    def __init__(self, outlets: Callable[[str, str], Sequence[object]]) -> None:
        self._outlets = outlets
        self._links: dict[tuple[str, str], ClientAudioLink] = {}

    def link(self, tenant_id: str, client_id: str, call_sid: str) -> "ClientAudioLink":
        return ClientAudioLink(self, tenant_id, client_id, call_sid)

    def outlets(self, tenant_id: str, client_id: str) -> list[AudioOutlet]:
        return [o for o in self._outlets(tenant_id, client_id) if hasattr(o, "send_audio")]  # type: ignore[misc]

    def deliver(self, tenant_id: str, call_sid: str, payload: bytes, codec: str, end_of_stream: bool) -> bool:
        """A frame from a client; False when no call of this tenant takes client audio under that sid."""
        link = self._links.get((tenant_id, call_sid))
        if link is None:
            return False
        link.receive(payload, codec)
        return True


class ClientAudioLink:
    """An :class:`~trunkline.ai.link.AgentLink` whose far side is an SDK process. DTMF, marks and
    barge-in have no place in the AudioFrame protocol, so they are not sent."""

    audio_codec = None

    def __init__(self, hub: ClientAudioHub, tenant_id: str, client_id: str, call_sid: str) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.call_sid = call_sid
        self.on_event: Callable[[AgentEvent], None] | None = None
        self.on_closed: Callable[[str], None] | None = None
        self.rejected_frames = 0
        self._sequence = 0
        self._wideband: Resampler | None = None

    async def open(self) -> None:
        if not self.hub.outlets(self.tenant_id, self.client_id):
            raise AgentUnreachable(f"client {self.client_id!r} has no event stream open")
        self.hub._links[(self.tenant_id, self.call_sid)] = self

    def send_audio(self, pcm: bytes) -> None:
        for outlet in self.hub.outlets(self.tenant_id, self.client_id):
            outlet.send_audio(self.call_sid, pcm, "PCM16", self._sequence, False)
        self._sequence += 1

    def receive(self, payload: bytes, codec: str) -> None:
        if codec == "PCMU":
            pcm = pcmu_decode(payload)
        elif codec == "PCMA":
            pcm = pcma_decode(payload)
        elif codec == "PCM16":
            pcm = payload
        elif codec == "PCM16/16000":
            if self._wideband is None:
                self._wideband = Resampler(16000, 8000)
            pcm = self._wideband.process(payload[: len(payload) & ~1])
        else:
            self.rejected_frames += 1
            return
        if self.on_event is not None and pcm:
            self.on_event(AgentAudio(pcm[: len(pcm) & ~1]))

    def send_dtmf(self, digit: str) -> None:
        pass

    def mark_played(self, name: str) -> None:
        pass

    def barge_in(self) -> None:
        pass

    def close(self) -> None:
        self.hub._links.pop((self.tenant_id, self.call_sid), None)
        for outlet in self.hub.outlets(self.tenant_id, self.client_id):
            outlet.send_audio(self.call_sid, b"", "PCM16", self._sequence, True)
