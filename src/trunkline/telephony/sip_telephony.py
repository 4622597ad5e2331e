"""``place_call`` for the call domain: SIP through a configured trunk, media from the shared pool."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from trunkline.ai.dialect import make_dialect
from trunkline.ai.events import CallInfo
from trunkline.ai.client_link import ClientAudioHub
from trunkline.ai.link import AgentLink, AgentUnreachable
from trunkline.ai.quic_link import QuicAgentPool
from trunkline.ai.websocket_link import WebSocketLink
from trunkline.calls.ports import AgentSpec, LegEvents, StreamInfo
from trunkline.config import TrunkConfig
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import RtpPortPool
from trunkline.sip_engine import CallListener, Credentials, OutgoingCall, RedirectPolicy, SipEndpoint, SipTarget
from trunkline.telephony.audio import AudioLibrary
from trunkline.telephony.leg import SipLeg


class SipTelephony:
    def __init__(
        self,
        endpoint: SipEndpoint,
        media_clock: MediaClock,
        rtp_ports: RtpPortPool,
        audio: AudioLibrary,
        advertised_media_host: str = "",
        client_audio: ClientAudioHub | None = None,
        quic_agents: QuicAgentPool | None = None,
        agent_ca_file: str | None = None,
    ) -> None:
        self.agent_ca_file = agent_ca_file
        self.client_audio = client_audio
        self.quic_agents = quic_agents
        self.endpoint = endpoint
        self.media_clock = media_clock
        self.rtp_ports = rtp_ports
        self.audio = audio
        self.advertised_media_host = advertised_media_host

    def admit_trunks(self, trunks: Sequence[TrunkConfig]) -> None:
        """Dialog-creating requests from an address that matches none of ``trunks`` get one
        stateless 403 from the endpoint (PROTOCOL.md §6 Inbound)."""
        self.endpoint.admit_only(lambda source: trunk_for_source(trunks, source) is not None)

    def place_call(self, trunk: TrunkConfig, to: str, call_from: str, events: LegEvents) -> SipLeg:
        return SipLeg(self, trunk, to, call_from, events)

    def unplayable(self, source: str) -> str | None:
        return self.audio.unplayable(source)

    def agent_link(self, spec: AgentSpec, info: StreamInfo) -> AgentLink:
        """A fresh, unopened link to the agent ``spec`` names."""
        call = CallInfo(call_sid=info.call_sid, stream_id=f"MZ{info.call_sid}", call_from=info.call_from, to=info.to,
                        trunk_id=info.trunk_id, tenant_id=info.tenant_id, agent_id=spec.agent_id)
        if spec.kind == "websocket":
            return WebSocketLink(spec.url, make_dialect(spec.dialect, call, {}, spec.sample_rate), ca_file=self.agent_ca_file)
        if spec.kind == "client" and self.client_audio is not None:
            return self.client_audio.link(info.tenant_id, spec.client_id, info.call_sid)
        if spec.kind == "quic" and self.quic_agents is not None:
            return self.quic_agents.link(spec.url, call, spec.sample_rate)
        raise AgentUnreachable(f"no way to reach a {spec.kind} agent")

    def invite(self, trunk: TrunkConfig, to: str, call_from: str, sdp: bytes, listener: CallListener) -> OutgoingCall:
        """A SIP URI keeps its own Request-URI but still leaves through the trunk, which acts as
        outbound proxy."""
        request_uri = self.destination_uri(trunk, to)
        credentials = Credentials(trunk.username, trunk.password) if trunk.username else None
        target = SipTarget(trunk.host, trunk.port, trunk.transport)
        redirects = RedirectPolicy(trunk.max_redirects, frozenset(h.lower() for h in (trunk.host, *trunk.redirect_hosts)))
        return self.endpoint.invite(target, request_uri, self.local_uri(call_from), request_uri, sdp, listener,
                                    credentials, redirects=redirects)

    @staticmethod
    def destination_uri(trunk: TrunkConfig, to: str) -> str:
        """Where ``to`` is reached: a SIP URI as it is, an E.164 number at the trunk
        (``sip:+1555...@trunk;user=phone``). Calls and transfers (Refer-To) alike."""
        if to.startswith(("sip:", "sips:")):
            return to
        return f"sip:{to}@{_host(trunk.host)}:{trunk.port};user=phone"

    def local_uri(self, call_from: str) -> str:
        """Who we are on a call placed as ``call_from``: its From, and Referred-By when it transfers."""
        local_host, local_port = self.endpoint.address
        return f"sip:{call_from or 'trunkline'}@{_host(local_host)}:{local_port}"


def trunk_for_source(trunks: Sequence[TrunkConfig], source: SipTarget) -> TrunkConfig | None:
    """The trunk a request from ``source`` belongs to: the first whose host is its address.

    Only the address counts, not the port: carriers often send from another port than the one
    they listen on. A trunk named by a host name matches nothing until names are resolved.
    """
    try:
        address = ipaddress.ip_address(source.host)
    except ValueError:
        return None
    for trunk in trunks:
        try:
            if ipaddress.ip_address(trunk.host.strip("[]")) == address:
                return trunk
        except ValueError:
            continue
    return None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
