"""The composition root: builds every part of a running gateway from a :class:`Config`.

This is the one place that knows all the parts; each of them only knows its neighbours' interfaces.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

from trunkline.ai.client_link import ClientAudioHub
from trunkline.ai.quic_link import QuicAgentPool
from trunkline.auth.tokens import KeyRing, TokenVerifier
from trunkline.calls.events import EventHub
from trunkline.calls.inbound import InboundRouting, InboundRoutes
from trunkline.calls.service import CallService
from trunkline.certs import (
    LOCAL_NAMES,
    CertificateMaterial,
    ensure_ca,
    ensure_certificate,
    load_ca,
    load_certificate,
    load_local_certificate,
)
from trunkline.config import Config, HostPort
from trunkline.enums import InboundRule
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import RtpPortPool
from trunkline.rpc.dispatch import Dispatcher
from trunkline.rpc.handlers import RpcHandlers
from trunkline.rpc.intake import IntakeLimits
from trunkline.rpc.server import RpcServer, server_configuration
from trunkline.sip_engine import SessionTimers, SipEndpoint
from trunkline.sip_engine.resolver import TrunkResolver
from trunkline.store import SqliteStore
from trunkline.telephony.audio import AudioLibrary
from trunkline.telephony.sip_telephony import SipTelephony
from trunkline.telephony.trunk_dns import TrunkDirectory
from trunkline.telephony.trunk_health import TrunkMonitor
from trunkline.telephony.trunk_tls import TrunkTls

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 10.0
STORE_FILE = "trunkline.db"
RENEW_BEFORE = timedelta(days=3)


class ListenError(OSError):
    """A listener that could not bind, named with its address and the config key that sets it."""

    def __init__(self, what: str, address: HostPort, key: str, cause: OSError) -> None:
        errno = cause.errno or getattr(cause.__cause__, "errno", None)  # uvloop wraps the bind error
        why = os.strerror(errno) if errno else str(cause)
        super().__init__(errno, f"cannot listen for {what} on {address}: {why} (set {key})")


def certificate_for(config: Config, make_ca: bool = False) -> CertificateMaterial:
    """The configured material, or the data directory's local certificate, made or renewed as needed:
    issued by the local CA when there is one (``make_ca`` makes it first), self-signed otherwise."""
    server = config.server
    if server.cert_file is not None and server.key_file is not None:
        return load_certificate(server.cert_file, server.key_file)
    now = datetime.now(timezone.utc)
    ca = ensure_ca(server.data_dir, now) if make_ca else load_ca(server.data_dir)
    return ensure_certificate(server.data_dir, now, LOCAL_NAMES + server.cert_names, renew_before=RENEW_BEFORE, ca=ca)


def current_certificate(config: Config) -> CertificateMaterial | None:
    """What a gateway with this config serves, making nothing: None when no gateway ever made its
    local certificate in the data directory."""
    server = config.server
    if server.cert_file is not None and server.key_file is not None:
        return load_certificate(server.cert_file, server.key_file)
    return load_local_certificate(server.data_dir)


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.events = EventHub(grace_s=config.server.event_replay_grace_s, limit=config.server.event_replay_limit)
        verifier = None
        if config.auth.mode == "jwt":
            keyring = KeyRing({t.id: {k.kid: k.public_key_pem for k in t.keys} for t in config.tenants})
            verifier = TokenVerifier(keyring, audience=config.auth.audience)
        media = config.media
        self.client_audio = ClientAudioHub(self.events.subscribers)
        self.quic_agents = QuicAgentPool(verify=str(media.agent_ca_file) if media.agent_ca_file else True)
        sip = config.sip
        self.trunk_directory = TrunkDirectory(config.trunks, TrunkResolver(
            nameservers=[(d.host, d.port) for d in sip.dns_servers] or None))
        self.sip = SipEndpoint(sip.listen.host, sip.listen.port, session_timers=SessionTimers(
            sip.session_expires_s, sip.min_se_s) if sip.session_expires_s else None,
            tls_listen=(sip.tls_listen.host, sip.tls_listen.port) if sip.tls_listen else None,
            tls_client=TrunkTls(config.trunks, self.trunk_directory))
        # Four phases 5 ms apart: calls' RTP leaves in four smaller bursts (MediaClock says why).
        self.media_clock = MediaClock(phases=4)
        self.telephony = SipTelephony(
            self.sip, self.media_clock, RtpPortPool(media.bind, media.rtp_port_min, media.rtp_port_max),
            AudioLibrary(hold_music=media.hold_music), client_audio=self.client_audio,
            quic_agents=self.quic_agents, agent_ca_file=str(media.agent_ca_file) if media.agent_ca_file else None,
            directory=self.trunk_directory,
        )
        self.telephony.admit_trunks()
        self.trunk_monitor = TrunkMonitor(self.sip, config.trunks, self.trunk_directory)
        self.calls = CallService(config.trunks, self.telephony, self.events, _schedule,
                                 announcements={b.id: b.announcement for b in config.buckets if b.announcement},
                                 agents=config.agents)
        self.handlers = RpcHandlers(self.events, config.auth.default_tenant, verifier, self.calls, self.client_audio)
        self.dispatcher = Dispatcher(self.handlers)
        self.certificate = certificate_for(config)
        if sip.tls_listen is not None:
            self.sip.tls_server = _sip_tls_server(sip.tls_cert_file or self.certificate.cert_path,
                                                  sip.tls_key_file or self.certificate.key_path)
        self.rpc = RpcServer(
            self.handlers, self.dispatcher,
            server_configuration(str(self.certificate.cert_path), str(self.certificate.key_path)),
            IntakeLimits(timeout_before_auth_s=config.server.unauthenticated_request_timeout_s,
                         pending_bytes=config.server.pending_request_bytes),
        )
        self._maintenance: asyncio.Task | None = None
        self.store: SqliteStore | None = None
        self.inbound: InboundRoutes | None = None

    async def start(self) -> None:
        """Open the store, then bind every listener. A store that cannot be used raises
        :class:`StoreError`, a listener that cannot bind :class:`ListenError`, each naming what."""
        _tune_garbage_collector()
        self.store = SqliteStore.open(self.config.server.data_dir / STORE_FILE)  # before serving: may block
        self.inbound = InboundRoutes(self.store, {t.id: t for t in self.config.trunks},
                                     agents=[a.id for a in self.config.agents])
        await self.inbound.load(initial=_configured_routing(self.config))
        self.handlers.inbound = self.inbound
        sip_listen, listen = self.config.sip.listen, self.config.server.quic_listen
        try:
            await self.sip.start()
        except OSError as exc:
            await self.close()
            raise ListenError("SIP (udp/tcp)", sip_listen, "sip.listen", exc) from None
        log.info("SIP on udp/tcp %s:%d", *self.sip.address)
        if self.sip.tls_address is not None:
            log.info("SIP on tls %s:%d", *self.sip.tls_address)
        await self.trunk_directory.start()
        self.trunk_monitor.start()
        try:
            await self.rpc.start(listen.host, listen.port)
        except OSError as exc:
            await self.close()
            raise ListenError("the TeleQuick RPC (QUIC, udp)", listen, "server.quic_listen", exc) from None
        host, port = self.rpc.address
        log.info("TeleQuick RPC on quic://%s:%d (auth %s)", host, port, self.config.auth.mode)
        self._log_certificate("TLS certificate")
        self._maintenance = asyncio.create_task(self._maintain())

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            try:
                self.events.sweep()
                self._refresh_certificate()
            except Exception:  # noqa: BLE001 - maintenance must outlive its own bugs
                log.exception("maintenance failed")

    def _refresh_certificate(self) -> None:
        """New connections get the local certificate as it should be now: renewed before it expires,
        or issued by a local CA made since (``trunkline cert --ca``). Most ticks only read the files."""
        if self.config.server.cert_file is not None:
            return
        current = certificate_for(self.config)
        if current.fingerprint_sha256 != self.certificate.fingerprint_sha256:
            self.certificate = current
            self.rpc.configuration.load_cert_chain(str(current.cert_path), str(current.key_path))
            self._log_certificate("new TLS certificate")

    def _log_certificate(self, what: str) -> None:
        material = self.certificate
        issuer = f"local CA {material.local_ca}" if material.local_ca else "self-signed" if material.self_signed else "configured"
        log.info("%s sha256 %s (valid until %s, %s)", what, material.fingerprint_hex, material.not_after.isoformat(), issuer)

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        self.rpc.close()
        await self.trunk_monitor.close()
        self.trunk_directory.close()
        await self.quic_agents.close()
        await self.sip.close()
        if self.store is not None:
            await self.store.close()


def _sip_tls_server(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Inbound SIP over TLS: our certificate, and no client certificate asked for (carriers are
    screened by address, like on UDP and TCP)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def _configured_routing(config: Config) -> list[InboundRouting]:
    """The config's [trunks.inbound] tables, as the routing a trunk starts with."""
    return [InboundRouting(t.tenant, t.id, InboundRule[t.inbound.rule.upper()], audio_url=t.inbound.audio_url,
                           webhook_url=t.inbound.webhook_url, ai_websocket_url=t.inbound.ai_websocket_url,
                           ai_quic_url=t.inbound.ai_quic_url, agent_id=t.inbound.agent)
            for t in config.trunks if t.inbound is not None]


def _tune_garbage_collector() -> None:
    """The media path allocates a few short-lived objects per packet (tens of thousands a second
    at a few hundred calls); with the default thresholds the cyclic collector runs constantly and its
    full passes stall the media clock for milliseconds. Objects alive at start are frozen out of
    collection and the young generation is collected less often (bench/calls.py: p99 tick lateness
    at 500 calls went from ~9 ms to ~4 ms). Reference counting still frees the per-packet garbage."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _schedule(delay: float, callback):
    """The domain's timers, on the running loop."""
    return asyncio.get_running_loop().call_later(delay, callback)
