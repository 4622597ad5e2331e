"""``trunkline.example.toml``: it starts a gateway as written, and it documents every key there is."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from trunkline import config as config_module
from trunkline.config import config_from_dict
from trunkline.gateway import Gateway
from trunkline.sdk import Client

EXAMPLE = Path(__file__).resolve().parent.parent / "trunkline.example.toml"
PUBLIC_PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"


async def test_a_gateway_starts_on_the_example_and_answers(tmp_path: Path):
    raw = tomllib.loads(EXAMPLE.read_text())
    # Only the listening ports (any free one) and the folder move, so the test fails on nothing but the file.
    raw["server"]["quic_listen"] = "127.0.0.1:0"
    raw["sip"]["listen"] = "127.0.0.1:0"
    gateway = Gateway(config_from_dict(raw, base_dir=tmp_path))
    await gateway.start()
    try:
        host, port = gateway.rpc.address
        async with Client.connect(f"{host}:{port}", ca_file=gateway.certificate.cert_path) as client:
            assert await client.get_active_buckets() == []
    finally:
        await gateway.close()


def test_every_key_the_gateway_reads_is_in_the_example(monkeypatch):
    """Load a config that visits every table (the example, plus a tenant) while recording each key the
    reader asks for; each must appear in the example, set or commented out."""
    asked: set[str] = set()
    real_get = config_module._Table.get

    def recording_get(self, name, kind, default):
        asked.add(re.sub(r"\[\d+\]", "", self.key(name)))
        return real_get(self, name, kind, default)

    monkeypatch.setattr(config_module._Table, "get", recording_get)
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["tenants"] = [{"id": "acme", "keys": [{"kid": "k1", "public_key_pem": PUBLIC_PEM}]}]
    config_from_dict(raw, base_dir=EXAMPLE.parent)

    text = EXAMPLE.read_text()
    tables = {part for name in re.findall(r"^#? ?\[\[?([\w.]+)", text, re.MULTILINE) for part in name.split(".")}
    documented = set(re.findall(r"\b(\w+) = ", text)) | tables
    missing = sorted(key for key in asked if key.rsplit(".", 1)[-1] not in documented)
    assert not missing, f"keys missing from {EXAMPLE.name}: {missing}"
