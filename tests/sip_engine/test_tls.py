"""SIP over TLS between two endpoints (RFC 3261 §26): one listening with a certificate, one
connecting with a context that trusts (or does not trust) its CA."""

from __future__ import annotations

import ssl
from datetime import datetime, timezone

import pytest

from trunkline.certs.ca import ensure_ca
from trunkline.certs.local import ensure_certificate
from trunkline.sip_engine import SipEndpoint, SipTarget, SipTransportError


@pytest.fixture
async def tls_server(tmp_path):
    now = datetime.now(timezone.utc)
    ca = ensure_ca(tmp_path, now)
    leaf = ensure_certificate(tmp_path, now, ("carrier.test",), ca=ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert_path, leaf.key_path)
    server = SipEndpoint("127.0.0.1", 0, tls_listen=("127.0.0.1", 0), tls_server=context)
    await server.start()
    yield server, ca.cert_path
    await server.close()


async def _options(server: SipEndpoint, trusted: ssl.SSLContext, name: str) -> int:
    assert server.tls_address is not None
    target = SipTarget("127.0.0.1", server.tls_address[1], "tls")
    client = SipEndpoint("127.0.0.1", 0, tls_client=lambda _target: (trusted, name))
    await client.start()
    try:
        return await client.options(target)
    finally:
        await client.close()


async def test_options_over_tls_to_a_trusted_certificate_is_answered(tls_server):
    server, ca = tls_server
    assert await _options(server, ssl.create_default_context(cafile=str(ca)), "carrier.test") == 200


async def test_a_certificate_for_another_name_is_refused(tls_server):
    server, ca = tls_server
    with pytest.raises(SipTransportError):
        await _options(server, ssl.create_default_context(cafile=str(ca)), "other.test")


async def test_a_certificate_from_an_unknown_ca_is_refused(tls_server):
    server, _ = tls_server
    with pytest.raises(SipTransportError):
        await _options(server, ssl.create_default_context(), "carrier.test")
