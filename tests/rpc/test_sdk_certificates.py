"""The gateway's certificate as clients that verify it see it: the public SDKs trust a local CA and
ask for fixed server names; Trunkline's own SDK keeps trusting the data directory's files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration

from tests.conftest import client_for
from tests.rawquic import RawProtocol
from trunkline.certs import ensure_ca
from trunkline.gateway import certificate_for
from trunkline.sdk import Client
from trunkline.wire import METHODS_BY_NAME, encode_frame
from trunkline.wire import dtos as d

EVENTS_ID = METHODS_BY_NAME["StreamEvents"].method_id


async def _verified_stream_events(gateway, cafile, server_name: str, alpn: list[str] | None = ("h3",)):
    """What a public SDK does: verify the chain against ``cafile`` under ``server_name``, then ask."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=list(alpn) if alpn else None,
                                      server_name=server_name)
    configuration.load_verify_locations(cafile=str(cafile))
    host, port = gateway.rpc.address
    async with connect(host, port, configuration=configuration, create_protocol=RawProtocol) as raw:
        stream = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest(client_id="sdk")))
        return await raw.outcome(stream)


@pytest.mark.parametrize("server_name,alpn", [
    ("dev.0.telequick.dev", ("h3",)),  # TeleQuick Python SDK
    ("dev.0.clutchcall.dev", ("h3",)),  # ClutchCall Python SDK
    ("h3", None),  # Rust SDK
])
async def test_public_sdk_names_verify_against_the_local_ca(start_gateway, tmp_path, server_name, alpn):
    ca = ensure_ca(tmp_path / "data", datetime.now(UTC))  # what `trunkline cert --ca` leaves behind
    gateway = await start_gateway()

    assert gateway.certificate.local_ca == ca.cert_path
    answer = await _verified_stream_events(gateway, ca.cert_path, server_name, alpn)
    assert answer == ("data", encode_frame(EVENTS_ID, d.Empty()))


async def test_a_running_gateway_serves_from_a_ca_made_after_it_started(start_gateway, tmp_path):
    gateway = await start_gateway({"server": {"cert_names": ["gw.example.test"]}})
    assert gateway.certificate.self_signed

    issued = certificate_for(gateway.config, make_ca=True)  # `trunkline cert --ca` while it runs
    with pytest.raises(ConnectionError):  # still serving the self-signed one
        await _verified_stream_events(gateway, issued.local_ca, "dev.0.telequick.dev")
    gateway._refresh_certificate()  # what its maintenance tick does every few seconds

    assert gateway.certificate == issued and issued.local_ca is not None
    for name in ("dev.0.telequick.dev", "gw.example.test"):
        assert (await _verified_stream_events(gateway, issued.local_ca, name))[0] == "data"


async def test_trunkline_sdk_trusts_the_ca_or_the_certificate_file(start_gateway, tmp_path):
    ca = ensure_ca(tmp_path / "data", datetime.now(UTC))
    gateway = await start_gateway()

    async with client_for(gateway) as by_cert_file:  # data_dir/tls/cert.pem: leaf and CA
        assert (await by_cert_file.authenticate("")).tenant_id == "local"
    host, port = gateway.rpc.address
    async with Client.connect(f"{host}:{port}", ca_file=ca.cert_path, server_name="dev.0.telequick.dev") as by_ca:
        assert (await by_ca.authenticate("")).tenant_id == "local"
