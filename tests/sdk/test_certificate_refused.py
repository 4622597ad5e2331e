"""A gateway whose certificate the client does not trust: a typed error saying so, at once."""

from __future__ import annotations

import pytest

from trunkline.sdk import CertificateRefused, Client


async def test_an_untrusted_gateway_certificate_is_a_certificate_refusal(gateway):
    host, port = gateway.rpc.address
    with pytest.raises(CertificateRefused, match="certificate was refused: self-signed certificate"):
        async with Client.connect(f"{host}:{port}", timeout=5):  # trusts only the system's CAs
            pass
