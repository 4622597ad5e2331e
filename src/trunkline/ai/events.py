"""What an agent can say to the gateway, whatever its transport or dialect.

Dialects parse their wire messages into these; the bridge acts on them. Audio is always 20 ms-aligned
or not, at 8 kHz mono PCM16 by the time it gets here (dialects resample), so the bridge never needs
to know what the agent spoke.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class AgentAudio:
    """Agent speech for the caller: 8 kHz mono in the link's ``audio_codec`` (PCM16 unless it names
    a G.711 law), any length (the bridge re-chunks and paces). Not frozen, unlike the others: one is
    made per audio message, and a frozen dataclass's ``__init__`` costs several times a plain one's."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class AgentMark:
    """Echo ``name`` back once all audio sent before it has been played to the caller."""

    name: str


@dataclass(frozen=True, slots=True)
class AgentClear:
    """Drop all queued agent audio now (the agent was interrupted or changed its mind)."""


@dataclass(frozen=True, slots=True)
class AgentHangup:
    pass


@dataclass(frozen=True, slots=True)
class AgentTransfer:
    to: str


@dataclass(frozen=True, slots=True)
class AgentDtmf:
    """Digits the agent wants sent into the call."""

    digits: str


AgentEvent = AgentAudio | AgentMark | AgentClear | AgentHangup | AgentTransfer | AgentDtmf


class AgentProtocolError(ValueError):
    """A message from the agent that does not parse; the bridge logs and drops it, the call goes on."""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the agent is told about the call when the stream starts."""

    call_sid: str
    stream_id: str
    call_from: str
    to: str
    trunk_id: str
    tenant_id: str
    agent_id: str = ""
