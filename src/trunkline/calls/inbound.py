"""What a trunk does with the calls it receives: one of the four InboundRules and its arguments.

A plain record the domain keeps per (tenant, trunk) and the store keeps durable (PROTOCOL.md §6
"Inbound": routing set by SetInboundRouting survives a restart).
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.enums import InboundRule


@dataclass(frozen=True, slots=True)
class InboundRouting:
    tenant_id: str
    trunk_id: str
    rule: InboundRule
    audio_url: str = ""  # PLAY_AND_HANGUP
    webhook_url: str = ""  # NOTIFY_AND_HANGUP
    ai_websocket_url: str = ""  # HANDLE_AI: a URL, or the configured agent below
    ai_quic_url: str = ""
    agent_id: str = ""
    updated_ms: int = 0
