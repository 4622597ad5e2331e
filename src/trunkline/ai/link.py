"""``AgentLink``: one call's connection to its agent, whatever carries it.

The bridge only needs "send this caller frame", "this mark was played", "the caller barged in" and a
callback for what the agent says; WebSocket (either dialect), WebTransport and an SDK client each
implement that. Sends are synchronous and never block: they run inside the media tick.
"""

from __future__ import annotations

from typing import Callable, Protocol

from trunkline.ai.events import AgentEvent


class AgentUnreachable(ConnectionError):
    """The agent could not be connected to (refused, timed out, handshake rejected)."""


class AgentLink(Protocol):
    on_event: Callable[[AgentEvent], None] | None
    on_closed: Callable[[str], None] | None

    async def open(self) -> None:
        """Connect and say hello; raises :class:`AgentUnreachable`."""

    def send_audio(self, pcm: bytes) -> None:
        """One 20 ms frame of caller audio, 8 kHz mono PCM16."""

    def send_dtmf(self, digit: str) -> None: ...

    def mark_played(self, name: str) -> None: ...

    def barge_in(self) -> None: ...

    def close(self) -> None:
        """Say goodbye (stop/shutdown) and close; ``on_closed`` is not called for our own close."""
