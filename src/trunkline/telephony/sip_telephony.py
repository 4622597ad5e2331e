"""``place_call`` for the call domain: SIP through a configured trunk, media from the shared pool."""

from __future__ import annotations

from trunkline.calls.ports import LegEvents
from trunkline.config import TrunkConfig
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import RtpPortPool
from trunkline.sip_engine import CallListener, Credentials, OutgoingCall, SipEndpoint, SipTarget
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
    ) -> None:
        self.endpoint = endpoint
        self.media_clock = media_clock
        self.rtp_ports = rtp_ports
        self.audio = audio
        self.advertised_media_host = advertised_media_host

    def place_call(self, trunk: TrunkConfig, to: str, call_from: str, events: LegEvents) -> SipLeg:
        return SipLeg(self, trunk, to, call_from, events)

    def invite(self, trunk: TrunkConfig, to: str, call_from: str, sdp: bytes, listener: CallListener) -> OutgoingCall:
        """An E.164 number is dialled at the trunk (``sip:+1555...@trunk;user=phone``); a SIP URI keeps
        its own Request-URI but still leaves through the trunk, which acts as outbound proxy."""
        if to.startswith(("sip:", "sips:")):
            request_uri = to
        else:
            request_uri = f"sip:{to}@{_host(trunk.host)}:{trunk.port};user=phone"
        local_host, local_port = self.endpoint.address
        from_uri = f"sip:{call_from or 'trunkline'}@{_host(local_host)}:{local_port}"
        credentials = Credentials(trunk.username, trunk.password) if trunk.username else None
        target = SipTarget(trunk.host, trunk.port, trunk.transport)
        return self.endpoint.invite(target, request_uri, from_uri, request_uri, sdp, listener, credentials)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
