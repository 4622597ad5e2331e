"""``AgentLink``: one call's connection to its agent, whatever carries it.

The bridge only needs "send this caller frame", "this mark was played", "the caller barged in" and a
callback for what the agent says; WebSocket (either dialect), WebTransport and an SDK client each
implement that. Sends are synchronous and never block: they run inside the media tick.

Audio both ways is 20 ms frames of 8 kHz mono PCM16, unless the link's ``audio_codec`` names a
G.711 law its agent speaks (the Twilio dialect: µ-law); then caller frames and ``AgentAudio`` are
160-byte G.711 in that law, and a call on the same law relays the bytes untouched.
"""

from __future__ import annotations

from typing import Callable, Protocol

from trunkline.ai.events import AgentEvent
from trunkline.media.g711 import G711Codec


class AgentUnreachable(ConnectionError):
    """The agent could not be connected to (refused, timed out, handshake rejected)."""


class AgentLink(Protocol):
    on_event: Callable[[AgentEvent], None] | None
    on_closed: Callable[[str], None] | None
    #: The G.711 law of the audio both ways, or None for PCM16.
    audio_codec: G711Codec | None

    async def open(self) -> None:
        """Connect and say hello; raises :class:`AgentUnreachable`."""

    def send_audio(self, frame: bytes) -> None:
        """One 20 ms frame of caller audio, 8 kHz mono (PCM16, or G.711 in :attr:`audio_codec`)."""

    def send_dtmf(self, digit: str) -> None: ...

    def mark_played(self, name: str) -> None: ...

    def barge_in(self) -> None: ...

    def close(self) -> None:
        """Say goodbye (stop/shutdown) and close; ``on_closed`` is not called for our own close."""
