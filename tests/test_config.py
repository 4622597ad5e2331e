"""Configuration: defaults, the public key names, and errors that name the key."""

from pathlib import Path

import pytest

from trunkline.config import ConfigError, HostPort, config_from_dict, load_config

PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexamplexamplexamplexamplexamplexamplexamplexamplexamplexampl
-----END PUBLIC KEY-----"""


def test_no_config_means_loopback_open_mode_with_a_carrier_trunk():
    config = load_config(None)
    assert config.server.quic_listen == HostPort("127.0.0.1", 9090)
    assert (config.auth.mode, config.auth.default_tenant) == ("open", "local")
    assert [t.id for t in config.trunks] == ["carrier"]
    assert config.trunks[0].port == 5070


def test_the_documented_keys_load(tmp_path: Path):
    (tmp_path / "acme.pub").write_text(PUBLIC_PEM)
    (tmp_path / "t.toml").write_text(f'''
[server]
quic_listen = "0.0.0.0:9443"
data_dir = "state"
[auth]
mode = "jwt"
default_tenant = "local"
[[tenants]]
id = "acme"
keys = [{{ kid = "k1", public_key_file = "acme.pub" }}, {{ kid = "k2", public_key_pem = """{PUBLIC_PEM}""" }}]
[sip]
listen = "127.0.0.1:5062"
[media]
bind = "127.0.0.1"
rtp_ports = "30000-30100"
[[trunks]]
id = "carrier"
tenant = "acme"
host = "sip.example.net"
port = 5070
transport = "tcp"
username = "u"
password = "p"
caller_ids = ["+15550001111"]
max_concurrent = 5
ring_timeout_s = 20
keepalive_s = 0
[[buckets]]
id = "vip"
announcement = "https://example.com/vip.wav"
''')
    config = load_config(tmp_path / "t.toml")
    assert config.server.data_dir == tmp_path / "state"  # relative to the config file
    assert [k.kid for k in config.tenants[0].keys] == ["k1", "k2"]
    assert config.sip.listen.port == 5062
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (30000, 30100)
    trunk = config.trunks[0]
    assert (trunk.tenant, trunk.transport, trunk.caller_ids, trunk.max_concurrent) == ("acme", "tcp", ("+15550001111",), 5)
    assert (trunk.ring_timeout_s, trunk.keepalive_s) == (20, 0)
    assert config.buckets[0].announcement == "https://example.com/vip.wav"


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"server": {"quic_lisen": "127.0.0.1:1"}}, "server.quic_lisen: unknown key"),
        ({"server": {"quic_listen": "nohost"}}, "server.quic_listen: 'nohost' is not host:port"),
        ({"auth": {"mode": "ldap"}}, "auth.mode: 'ldap' is not one of open, jwt"),
        ({"server": {"quic_listen": "0.0.0.0:9090"}}, "auth.mode: 'open' serves anyone"),
        ({"auth": {"mode": "jwt"}}, "tenants: auth.mode = \"jwt\" needs at least one tenant with keys"),
        ({"tenants": [{"id": "a", "keys": [{"kid": "k", "public_key_pem": "nope"}]}]}, "tenants[0].keys[0].public_key_pem: not a PEM public key"),
        ({"trunks": [{"id": "t", "port": 70000}]}, "trunks[0].port: 70000 is outside 0..65535"),
        ({"trunks": [{"id": "t", "transport": "sctp"}]}, "trunks[0].transport: 'sctp' is not one of udp, tcp, tls"),
        ({"trunks": [{"id": "t", "tenant": "ghost"}]}, "trunks[0].tenant: unknown tenant 'ghost'"),
        ({"trunks": [{"id": "t"}, {"id": "t"}]}, "trunks[1].id: duplicate id 't'"),
        ({"trunks": [{"port": 5060}]}, "trunks[0].id: required"),
        ({"trunks": [{"id": "t", "caller_ids": [1]}]}, "trunks[0].caller_ids: must be a list of strings"),
        ({"trunks": [{"id": "t", "register": "yes"}]}, "trunks[0].register: expected bool"),
        ({"media": {"rtp_ports": "30000"}}, "media.rtp_ports: '30000' must be 'LOW-HIGH'"),
        ({"server": {"cert_file": "c.pem"}}, "server.cert_file: cert_file and key_file go together"),
        ({"sip": "x"}, "sip: expected dict"),
        ({"media": {"hold_music": "/nonexistent.wav"}}, "media.hold_music: /nonexistent.wav is not a file"),
        ({"buckets": [{"id": "vip", "announcement": "relative.wav"}]}, "buckets[0].announcement: must be an absolute"),
        ({"buckets": [{"id": "vip"}, {"id": "vip"}]}, "buckets[1].id: duplicate id 'vip'"),
    ],
)
def test_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert str(err.value).startswith(message)


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
