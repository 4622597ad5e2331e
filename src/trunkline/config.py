"""Gateway configuration: one TOML file, validated completely at start.

Everything a running gateway reads from its config is a frozen dataclass built here, so a typo or a
bad value stops ``trunkline serve`` with one line naming the key (``trunks[1].port: ...``) instead of
failing later inside a call. Unknown keys are errors too: a misspelt key silently ignored is a
production outage waiting for its first call.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message starts with the key's path."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class ServerConfig:
    quic_listen: HostPort = HostPort("127.0.0.1", 9090)
    data_dir: Path = Path(".trunkline")
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_names: tuple[str, ...] = ()  # DNS names / IPs the local certificate carries beyond LOCAL_NAMES
    event_replay_grace_s: float = 60.0
    event_replay_limit: int = 10_000
    unauthenticated_request_timeout_s: int = 10  # a request opened before Authenticate is reset if unfinished by then
    pending_request_bytes: int = 8 << 20  # unfinished request bytes an authenticated connection may hold


@dataclass(frozen=True)
class TenantKeyConfig:
    kid: str
    public_key_pem: str


@dataclass(frozen=True)
class TenantConfig:
    id: str
    keys: tuple[TenantKeyConfig, ...] = ()


@dataclass(frozen=True)
class AuthConfig:
    mode: str = "open"
    default_tenant: str = "local"
    audience: str | None = None


@dataclass(frozen=True)
class SipConfig:
    listen: HostPort = HostPort("127.0.0.1", 5060)
    session_expires_s: int = 1800  # RFC 4028 interval our INVITEs ask for; 0 = no session timers
    min_se_s: int = 90  # the shortest interval we accept (RFC 4028's floor is 90; less only for tests)
    dns_servers: tuple[HostPort, ...] = ()  # for trunk SRV lookups; () = the system's (/etc/resolv.conf)
    tls_listen: HostPort | None = None  # SIP over TLS accepted here; None = no inbound TLS
    tls_cert_file: Path | None = None  # its certificate; None = the gateway's (server.cert_file or local)
    tls_key_file: Path | None = None


@dataclass(frozen=True)
class MediaConfig:
    bind: str = "127.0.0.1"
    rtp_port_min: int = 20000
    rtp_port_max: int = 29999
    hold_music: Path | None = None  # a WAV; None = the built-in loop
    agent_ca_file: Path | None = None  # trust this CA/certificate for wss:// and QUIC agents too
    rtp_timeout_s: int = 30  # no RTP/RTCP from the far end this long ends the call (0 = never)
    rtp_hold_timeout_s: int = 0  # the same while the media is held or one-way (0 = never)


@dataclass(frozen=True)
class AgentConfig:
    id: str
    url: str  # ws:// or wss:// (WebSocket), https:// or quic:// (WebTransport)
    dialect: str = "twilio"  # WebSocket only: "twilio" (Media Streams) or "pcm16" (binary frames)
    sample_rate: int = 8000  # pcm16 and QUIC: 8000, 16000 or 24000


@dataclass(frozen=True)
class BucketConfig:
    id: str
    announcement: str = ""  # absolute .wav path or http(s) URL; "" = a short built-in tone


@dataclass(frozen=True)
class InboundConfig:
    """A trunk's initial inbound routing; routing set over the API (and stored) wins over it."""

    rule: str  # reject | play_and_hangup | notify_and_hangup | handle_ai
    audio_url: str = ""
    webhook_url: str = ""
    ai_websocket_url: str = ""
    ai_quic_url: str = ""
    agent: str = ""


INBOUND_RULES = ("reject", "play_and_hangup", "notify_and_hangup", "handle_ai")


@dataclass(frozen=True)
class TrunkConfig:
    id: str
    tenant: str = "local"
    host: str = "127.0.0.1"
    port: int = 5070
    transport: str = "udp"
    username: str = ""
    password: str = ""
    caller_ids: tuple[str, ...] = ()
    max_concurrent: int = 50
    register: bool = False
    inbound: InboundConfig | None = None  # None: calls in on this trunk are rejected until routed
    ring_timeout_s: int = 60
    max_duration_s: int = 4 * 3600
    keepalive_s: int = 30
    max_redirects: int = 3  # 3xx responses a call follows, to the trunk's host or redirect_hosts only
    redirect_hosts: tuple[str, ...] = ()  # hosts other than the trunk's own that a 3xx may send calls to
    rtp_timeout_s: int = 30  # [media]'s unless the trunk says otherwise
    rtp_hold_timeout_s: int = 0
    tls_ca: Path | None = None  # transport "tls": CA bundle the carrier's certificate must chain to; None = system
    tls_verify: bool = True  # False only by explicit choice: the carrier's certificate is not checked
    tls_cert: Path | None = None  # client certificate for carriers that require mutual TLS
    tls_key: Path | None = None
    srtp: bool = False  # media as SRTP with SDES keys (RFC 4568); a carrier that answers plain RTP gets 488


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tenants: tuple[TenantConfig, ...] = ()
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    trunks: tuple[TrunkConfig, ...] = (TrunkConfig(id="carrier"),)
    buckets: tuple[BucketConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    source: Path | None = None


# --- reading ---------------------------------------------------------------------------------


class _Table:
    """A TOML table being read: typed getters that name the key on error, and a final check that no
    key was left unread (a typo)."""

    def __init__(self, data: Any, path: str, base_dir: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: must be a table")
        self.data = data
        self.path = path
        self.base_dir = base_dir
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.seen.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{self.key(name)}: expected {want}, got {type(value).__name__} {value!r}")
        return value

    def table(self, name: str) -> "_Table":
        return _Table(self.get(name, dict, {}), self.key(name), self.base_dir)

    def tables(self, name: str) -> list["_Table"]:
        items = self.get(name, list, None)
        if items is None:
            return []
        return [_Table(item, f"{self.key(name)}[{i}]", self.base_dir) for i, item in enumerate(items)]

    def int_in(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.get(name, int, default)
        if not lo <= value <= hi:
            raise ConfigError(f"{self.key(name)}: {value} is outside {lo}..{hi}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {value!r} is not one of {', '.join(choices)}")
        return value

    def nonempty(self, name: str, default: str | None = None) -> str:
        value = self.get(name, str, default)
        if not value:
            raise ConfigError(f"{self.key(name)}: required, must be a non-empty string")
        return value

    def path_value(self, name: str, default: Path | None) -> Path | None:
        value = self.get(name, str, None)
        if value is None:
            return default
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def host_port(self, name: str, default: HostPort) -> HostPort:
        value = self.get(name, str, None)
        if value is None:
            return default
        try:
            return parse_host_port(value)
        except ValueError as exc:
            raise ConfigError(f"{self.key(name)}: {exc}") from None

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")


def parse_host_port(text: str) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"port {port!r} must be 0-65535 (0 = any free port)")
    return HostPort(host, int(port))


_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _cert_names(t: _Table) -> tuple[str, ...]:
    names = t.get("cert_names", list, [])
    for i, name in enumerate(names):
        if not isinstance(name, str) or not (_is_ip(name) or (len(name) <= 253 and _DNS_NAME.fullmatch(name))):
            raise ConfigError(f"{t.key('cert_names')}[{i}]: {name!r} is neither a DNS name nor an IP address")
    return tuple(names)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _read_key_pem(t: _Table) -> str:
    pem = t.get("public_key_pem", str, "")
    file = t.path_value("public_key_file", None)
    if bool(pem) == bool(file):
        raise ConfigError(f"{t.key('public_key_pem')}: give exactly one of public_key_pem or public_key_file")
    if file is not None:
        try:
            pem = file.read_text()
        except OSError as exc:
            raise ConfigError(f"{t.key('public_key_file')}: cannot read {file}: {exc.strerror}") from None
    if "BEGIN PUBLIC KEY" not in pem:
        raise ConfigError(f"{t.key('public_key_pem')}: not a PEM public key")
    return pem


def load_config(path: Path | None = None) -> Config:
    """Read and validate ``path``; ``None`` gives the embedded defaults (loopback, open mode)."""
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(raw, base_dir=Path(path).resolve().parent, source=Path(path))


def config_from_dict(raw: dict, base_dir: Path = Path("."), source: Path | None = None) -> Config:
    root = _Table(raw, "", base_dir)
    defaults = Config()

    s = root.table("server")
    server = ServerConfig(
        quic_listen=s.host_port("quic_listen", defaults.server.quic_listen),
        data_dir=s.path_value("data_dir", base_dir / defaults.server.data_dir),
        cert_file=s.path_value("cert_file", None),
        key_file=s.path_value("key_file", None),
        cert_names=_cert_names(s),
        event_replay_grace_s=float(s.int_in("event_replay_grace_s", 60, 0, 3600)),
        event_replay_limit=s.int_in("event_replay_limit", 10_000, 0, 1_000_000),
        unauthenticated_request_timeout_s=s.int_in("unauthenticated_request_timeout_s", 10, 1, 300),
        pending_request_bytes=s.int_in("pending_request_bytes", 8 << 20, 2 << 20, 1 << 30),
    )
    s.done()
    if (server.cert_file is None) != (server.key_file is None):
        raise ConfigError("server.cert_file: cert_file and key_file go together")
    if server.cert_file is not None and server.cert_names:
        raise ConfigError("server.cert_names: only for the local certificate; the configured cert_file has its own names")

    a = root.table("auth")
    audience = a.get("audience", str, "")
    auth = AuthConfig(
        mode=a.choice("mode", "open", ("open", "jwt")),
        default_tenant=a.nonempty("default_tenant", "local"),
        audience=audience or None,
    )
    a.done()
    if auth.mode == "open" and not server.quic_listen.is_loopback:
        raise ConfigError(
            f"auth.mode: 'open' serves anyone who can reach {server.quic_listen}; "
            "use mode = \"jwt\" or a loopback quic_listen"
        )

    tenants = []
    for t in root.tables("tenants"):
        keys = []
        for k in t.tables("keys"):
            keys.append(TenantKeyConfig(kid=k.nonempty("kid"), public_key_pem=_read_key_pem(k)))
            k.done()
        tenants.append(TenantConfig(id=t.nonempty("id"), keys=tuple(keys)))
        t.done()
    _unique(root, "tenants", [t.id for t in tenants])
    if auth.mode == "jwt" and not any(t.keys for t in tenants):
        raise ConfigError("tenants: auth.mode = \"jwt\" needs at least one tenant with keys")

    sp = root.table("sip")
    sip = SipConfig(listen=sp.host_port("listen", defaults.sip.listen),
                    session_expires_s=sp.int_in("session_expires_s", 1800, 0, 86_400),
                    min_se_s=sp.int_in("min_se_s", 90, 1, 86_400),
                    dns_servers=_host_ports(sp, "dns_servers"),
                    tls_listen=sp.host_port("tls_listen", None),
                    tls_cert_file=sp.path_value("tls_cert_file", None),
                    tls_key_file=sp.path_value("tls_key_file", None))
    sp.done()
    if (sip.tls_cert_file is None) != (sip.tls_key_file is None):
        raise ConfigError("sip.tls_cert_file: tls_cert_file and tls_key_file go together")
    if sip.session_expires_s and sip.session_expires_s < sip.min_se_s:
        raise ConfigError(f"sip.session_expires_s: {sip.session_expires_s} is below sip.min_se_s ({sip.min_se_s})")

    m = root.table("media")
    ports = m.get("rtp_ports", str, "20000-29999")
    lo, _, hi = ports.partition("-")
    if not (lo.isdigit() and hi.isdigit() and 1024 <= int(lo) < int(hi) < 65536):
        raise ConfigError(f"media.rtp_ports: {ports!r} must be 'LOW-HIGH' within 1024-65535")
    media = MediaConfig(bind=m.nonempty("bind", "127.0.0.1"), rtp_port_min=int(lo), rtp_port_max=int(hi),
                        hold_music=m.path_value("hold_music", None), agent_ca_file=m.path_value("agent_ca_file", None),
                        rtp_timeout_s=m.int_in("rtp_timeout_s", 30, 0, 86_400),
                        rtp_hold_timeout_s=m.int_in("rtp_hold_timeout_s", 0, 0, 86_400))
    m.done()
    if media.hold_music is not None and not media.hold_music.is_file():
        raise ConfigError(f"media.hold_music: {media.hold_music} is not a file")

    buckets = []
    for b in root.tables("buckets"):
        announcement = b.get("announcement", str, "")
        if announcement and not announcement.startswith(("http://", "https://", "/")):
            raise ConfigError(f"{b.key('announcement')}: must be an absolute .wav path or an http(s) URL")
        buckets.append(BucketConfig(id=b.nonempty("id"), announcement=announcement))
        b.done()
    _unique(root, "buckets", [b.id for b in buckets])

    agents = []
    for a in root.tables("agents"):
        url = a.nonempty("url")
        if not url.startswith(("ws://", "wss://", "https://", "quic://")):
            raise ConfigError(f"{a.key('url')}: {url!r} must be ws://, wss://, https:// or quic://")
        agents.append(AgentConfig(
            id=a.nonempty("id"), url=url, dialect=a.choice("dialect", "twilio", ("twilio", "pcm16")),
            sample_rate=a.get("sample_rate", int, 8000),
        ))
        if agents[-1].sample_rate not in (8000, 16000, 24000):
            raise ConfigError(f"{a.key('sample_rate')}: must be 8000, 16000 or 24000")
        a.done()
    _unique(root, "agents", [a.id for a in agents])

    known_tenants = {t.id for t in tenants} | {auth.default_tenant}
    trunks = []
    for t in root.tables("trunks"):
        caller_ids = t.get("caller_ids", list, [])
        if not all(isinstance(c, str) for c in caller_ids):
            raise ConfigError(f"{t.key('caller_ids')}: must be a list of strings")
        redirect_hosts = t.get("redirect_hosts", list, [])
        if not all(isinstance(h, str) and h for h in redirect_hosts):
            raise ConfigError(f"{t.key('redirect_hosts')}: must be a list of host names or IP addresses")
        trunk = TrunkConfig(
            id=t.nonempty("id"),
            tenant=t.nonempty("tenant", auth.default_tenant),
            host=t.nonempty("host", "127.0.0.1"),
            port=t.int_in("port", 0, 0, 65535),  # 0: RFC 3263 (SRV for a name, else 5060, or 5061 for tls)
            transport=t.choice("transport", "udp", ("udp", "tcp", "tls")),
            username=t.get("username", str, ""),
            password=t.get("password", str, ""),
            caller_ids=tuple(caller_ids),
            max_concurrent=t.int_in("max_concurrent", 50, 1, 100_000),
            register=t.get("register", bool, False),
            inbound=_inbound(t, agents),
            ring_timeout_s=t.int_in("ring_timeout_s", 60, 1, 600),
            max_duration_s=t.int_in("max_duration_s", 4 * 3600, 1, 7 * 24 * 3600),
            keepalive_s=t.int_in("keepalive_s", 30, 0, 3600),
            max_redirects=t.int_in("max_redirects", 3, 0, 10),
            redirect_hosts=tuple(redirect_hosts),
            rtp_timeout_s=t.int_in("rtp_timeout_s", media.rtp_timeout_s, 0, 86_400),
            rtp_hold_timeout_s=t.int_in("rtp_hold_timeout_s", media.rtp_hold_timeout_s, 0, 86_400),
            srtp=t.get("srtp", bool, False),
            tls_ca=t.path_value("tls_ca", None),
            tls_verify=t.get("tls_verify", bool, True),
            tls_cert=t.path_value("tls_cert", None),
            tls_key=t.path_value("tls_key", None),
        )
        if (trunk.tls_cert is None) != (trunk.tls_key is None):
            raise ConfigError(f"{t.key('tls_cert')}: tls_cert and tls_key go together")
        if trunk.tenant not in known_tenants:
            raise ConfigError(f"{t.key('tenant')}: unknown tenant {trunk.tenant!r}")
        trunks.append(trunk)
        t.done()
    _unique(root, "trunks", [t.id for t in trunks])
    root.done()

    return Config(
        server=server, auth=auth, tenants=tuple(tenants), sip=sip, media=media,
        trunks=tuple(trunks) if "trunks" in raw else defaults.trunks, buckets=tuple(buckets), agents=tuple(agents), source=source,
    )


def _inbound(trunk: _Table, agents: list[AgentConfig]) -> InboundConfig | None:
    if "inbound" not in trunk.data:
        return None
    t = trunk.table("inbound")
    inbound = InboundConfig(
        rule=t.choice("rule", "reject", INBOUND_RULES), audio_url=t.get("audio_url", str, ""),
        webhook_url=t.get("webhook_url", str, ""), ai_websocket_url=t.get("ai_websocket_url", str, ""),
        ai_quic_url=t.get("ai_quic_url", str, ""), agent=t.get("agent", str, ""),
    )
    t.done()
    if inbound.agent and inbound.agent not in {a.id for a in agents}:
        raise ConfigError(f"{t.key('agent')}: unknown agent {inbound.agent!r}")
    needed = {"play_and_hangup": ("audio_url",), "notify_and_hangup": ("webhook_url",),
              "handle_ai": ("ai_websocket_url", "ai_quic_url", "agent")}.get(inbound.rule, ())
    if needed and not any(getattr(inbound, name) for name in needed):
        raise ConfigError(f"{t.key('rule')}: {inbound.rule} needs {' or '.join(needed)}")
    return inbound


def _host_ports(t: _Table, name: str) -> tuple[HostPort, ...]:
    values = t.get(name, list, [])
    try:
        return tuple(parse_host_port(v) for v in values)
    except (TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{t.key(name)}: must be a list of \"host:port\" strings ({exc})") from None


def _unique(root: _Table, name: str, ids: list[str]) -> None:
    seen = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise ConfigError(f"{name}[{i}].id: duplicate id {ident!r}")
        seen.add(ident)
