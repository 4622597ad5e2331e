"""What the WebSocket bridge needs from an agent dialect, and the factory that picks one.

A dialect is a pure codec for one call: it turns caller frames and call events into wire messages
and the agent's wire messages into :mod:`trunkline.ai.events`. Keeping it free of I/O and clocks
lets the transport stay dialect-agnostic and lets every message shape be tested byte for byte.
"""

from __future__ import annotations

from typing import Protocol

from trunkline.ai.events import AgentEvent, CallInfo
from trunkline.ai.pcm_dialect import Pcm16Dialect
from trunkline.ai.twilio import TwilioDialect
from trunkline.media.g711 import G711Codec

DEFAULT_DIALECT = "twilio"
DIALECTS = ("twilio", "pcm16")


class AgentDialect(Protocol):
    """One call's agent protocol. Not thread-safe; counters and resampler state are per call."""

    #: Rate of the audio on the wire; the bridge side is always 8 kHz mono.
    sample_rate: int
    name: str
    #: The bridge-side audio: None for PCM16, or the G.711 law the dialect takes and gives as it is.
    audio_codec: G711Codec | None

    def opening(self) -> list[str | bytes]:
        """Messages to send as soon as the agent connection is open."""
        ...

    def media(self, frame: bytes) -> str | bytes:
        """One 20 ms frame of caller audio (8 kHz mono, in :attr:`audio_codec`) as a wire message."""
        ...

    def dtmf(self, digit: str) -> str:
        """The caller pressed ``digit``."""
        ...

    def mark_played(self, name: str) -> str:
        """Echo of the agent's mark ``name``: the audio queued before it was played (or cleared)."""
        ...

    def barge_in(self) -> str:
        """The caller talked over the agent and the gateway already dropped the agent's queued audio."""
        ...

    def closing(self) -> list[str | bytes]:
        """Messages to send when the call ends, before the connection is closed."""
        ...

    def parse(self, message: str | bytes) -> list[AgentEvent]:
        """Events in one agent message; raises only :class:`AgentProtocolError`, for any garbage."""
        ...


def make_dialect(
    name: str, info: CallInfo, custom_parameters: dict[str, str], sample_rate: int = 8000
) -> AgentDialect:
    """A fresh dialect for one call.

    ``name`` is case-insensitive and empty means :data:`DEFAULT_DIALECT`. ``sample_rate`` only
    applies to ``pcm16`` (8000, 16000 or 24000); Twilio Media Streams is µ-law at 8 kHz by
    definition, so it is ignored there rather than failing calls whose agent entry also sets it.
    """
    key = name.lower() or DEFAULT_DIALECT
    if key == "twilio":
        return TwilioDialect(info, custom_parameters)
    if key == "pcm16":
        return Pcm16Dialect(info, custom_parameters, sample_rate)
    raise ValueError(f"unknown agent dialect {name!r}; expected one of {DIALECTS}")
