"""ALPN on the native QUIC port (PROTOCOL.md §1): `h3`, or none at all as the public Rust SDK offers."""

from __future__ import annotations

import ssl

import pytest
from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration

from tests.rawquic import RawProtocol
from trunkline.wire import METHODS_BY_NAME, encode_frame
from trunkline.wire import dtos as d

EVENTS_ID = METHODS_BY_NAME["StreamEvents"].method_id


async def _stream_events(gateway, alpn: list[str] | None) -> tuple[tuple[str, bytes], str | None]:
    """One StreamEvents request from a client offering ``alpn``; the answer and the negotiated ALPN."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=alpn)
    configuration.verify_mode = ssl.CERT_NONE
    host, port = gateway.rpc.address
    async with connect(host, port, configuration=configuration, create_protocol=RawProtocol) as raw:
        stream = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest(client_id="rust")))
        return await raw.outcome(stream), raw._quic.tls.alpn_negotiated


@pytest.mark.parametrize("alpn", [None, ["h3"], ["hq-interop", "h3"]], ids=["none", "h3", "h3-second"])
async def test_a_client_offering_h3_or_no_alpn_is_served(gateway, alpn):
    answer, negotiated = await _stream_events(gateway, alpn)

    assert answer == ("data", encode_frame(EVENTS_ID, d.Empty()))
    assert negotiated == (None if alpn is None else "h3")  # nothing is answered to a client that offered nothing


async def test_a_client_offering_only_another_protocol_is_refused(gateway):
    with pytest.raises(ConnectionError):
        await _stream_events(gateway, ["hq-interop"])
