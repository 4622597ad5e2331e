"""``place_call`` for the call domain: SIP through a configured trunk, media from the shared pool."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

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
from trunkline.sip_engine.call import NO_RESPONSE, TRANSPORT_FAILED
from trunkline.sip_engine.resolver import ResolveError
from trunkline.telephony.audio import AudioLibrary
from trunkline.telephony.leg import SipLeg
from trunkline.telephony.trunk_dns import TrunkDirectory

log = logging.getLogger(__name__)

FAIL_OVER = frozenset((TRANSPORT_FAILED, NO_RESPONSE, 503))
"""INVITE outcomes that move a call to the trunk's next target (RFC 3263 §4.3)."""


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
        directory: TrunkDirectory | None = None,
    ) -> None:
        self.directory = directory or TrunkDirectory(())
        self.agent_ca_file = agent_ca_file
        self.client_audio = client_audio
        self.quic_agents = quic_agents
        self.endpoint = endpoint
        self.media_clock = media_clock
        self.rtp_ports = rtp_ports
        self.audio = audio
        self.advertised_media_host = advertised_media_host

    def admit_trunks(self) -> None:
        """Dialog-creating requests from an address that is none of the directory's trunks get one
        stateless 403 from the endpoint (PROTOCOL.md §6 Inbound)."""
        self.endpoint.admit_only(lambda source: self.directory.owner(source.host) is not None)

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

    def invite(self, trunk: TrunkConfig, to: str, call_from: str, sdp: bytes, listener: CallListener) -> TrunkCall:
        """A SIP URI keeps its own Request-URI but still leaves through the trunk, which acts as
        outbound proxy."""
        return TrunkCall(self, trunk, self.destination_uri(trunk, to), self.local_uri(call_from), sdp, listener)

    @staticmethod
    def destination_uri(trunk: TrunkConfig, to: str) -> str:
        """Where ``to`` is reached: a SIP URI as it is, an E.164 number at the trunk
        (``sip:+1555...@trunk;user=phone``). Calls and transfers (Refer-To) alike."""
        if to.startswith(("sip:", "sips:")):
            return to
        port = f":{trunk.port}" if trunk.port else ""
        return f"sip:{to}@{_host(trunk.host)}{port};user=phone"

    def local_uri(self, call_from: str) -> str:
        """Who we are on a call placed as ``call_from``: its From, and Referred-By when it transfers."""
        local_host, local_port = self.endpoint.address
        return f"sip:{call_from or 'trunkline'}@{_host(local_host)}:{local_port}"


class TrunkCall:
    """An outgoing call through a trunk, as the leg sees it: one call, however many targets it took.

    The trunk's host is resolved first (RFC 3263, without blocking the loop); then each target gets
    its own INVITE until one is not refused by the network, unanswered or 503 (§4.3). Those
    failures stay silent while another target is left; everything else the engine reports reaches
    the leg unchanged. A host that does not resolve fails the call like an unreachable trunk.
    """

    def __init__(self, telephony: SipTelephony, trunk: TrunkConfig, request_uri: str, from_uri: str,
                 sdp: bytes, listener: CallListener) -> None:
        self._telephony = telephony
        self._trunk = trunk
        self._request_uri = request_uri
        self._from_uri = from_uri
        self._sdp = sdp
        self._listener: Any = listener
        self._targets: list[SipTarget] = []
        self._call: OutgoingCall | None = None
        self._failing_over = False
        self._hung_up = False
        self._placing = asyncio.ensure_future(self._place())

    async def _place(self) -> None:
        try:
            self._targets = await self._telephony.directory.targets(self._trunk)
        except ResolveError as exc:
            log.warning("call via trunk %s failed: its host does not resolve (%s)", self._trunk.id, exc)
            self._end(TRANSPORT_FAILED, f"trunk host does not resolve: {exc}")
            return
        self._next()

    def _next(self) -> None:
        if self._hung_up:
            self._end(487, "Request Terminated")
            return
        trunk = self._trunk
        target = self._targets.pop(0)
        hosts = {trunk.host, *trunk.redirect_hosts, target.host}
        self._call = self._telephony.endpoint.invite(
            target, self._request_uri, self._from_uri, self._request_uri, self._sdp, self,
            Credentials(trunk.username, trunk.password) if trunk.username else None,
            redirects=RedirectPolicy(trunk.max_redirects, frozenset(h.lower() for h in hosts)))

    def _end(self, status: int, reason: str) -> None:
        """Fail the call before any INVITE of it is left, the way the engine fails one."""
        self._listener.on_failed(status, reason, {})
        self._listener.on_terminated()

    # --- what the leg asks of its call ----------------------------------------------------------

    def hangup(self) -> None:
        self._hung_up = True
        if self._call is not None:
            self._call.hangup()

    async def reinvite(self, sdp: bytes) -> tuple[int, bytes | None]:
        assert self._call is not None
        return await self._call.reinvite(sdp)

    async def request(self, *args: Any, **kwargs: Any) -> int:
        assert self._call is not None
        return await self._call.request(*args, **kwargs)

    # --- the engine's listener: fail-over, everything else passed on ----------------------------

    def on_failed(self, status: int, reason: str, headers: dict[str, str]) -> None:
        if status in FAIL_OVER and self._targets and not self._hung_up:
            log.info("call via trunk %s: %s (%d); trying %s", self._trunk.id, reason, status, self._targets[0])
            self._failing_over = True
            return
        self._listener.on_failed(status, reason, headers)

    def on_terminated(self) -> None:
        if self._failing_over:
            self._failing_over = False
            self._next()
            return
        self._call = None  # the engine's call holds us until its transactions end: no cycle through us
        self._listener.on_terminated()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listener, name)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
