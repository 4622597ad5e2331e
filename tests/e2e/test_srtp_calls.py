"""A trunk with ``srtp = true`` against carriers on loopback: SIPp does the signalling, and since it
has no SRTP, the media goes to an SRTP echo in the test (pylibsrtp, the carrier's key from the SDP
SIPp answers with, the gateway's from the INVITE SIPp received)."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil

import pytest

from tests.e2e.calls import carrier, watched_client
from tests.peers.sipp import free_udp_port, uas
from trunkline.enums import DialplanAction
from trunkline.media.g711 import PCMU
from trunkline.media.rtp import parse_rtp
from trunkline.media.srtp import SdesKey, SrtpContext, SrtpError, parse_crypto

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"


class SrtpEcho(asyncio.DatagramProtocol):
    """The carrier's media: decrypts what the gateway sends with the key the gateway offered, and
    sends each packet back encrypted with the carrier's own key."""

    def __init__(self, key: SdesKey, gateway_key) -> None:
        self.key = key
        self.gateway_key = gateway_key  # () -> the gateway's SdesKey, once its INVITE has arrived
        self.context: SrtpContext | None = None
        self.clear: list[bytes] = []  # RTP payloads from the gateway, decrypted
        self.refused = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if self.context is None:
            gateway_key = self.gateway_key()
            if gateway_key is None:  # SIPp has not written the INVITE out yet
                return
            self.context = SrtpContext(self.key, gateway_key)
        try:
            rtp = self.context.unprotect(data)
        except SrtpError:
            self.refused += 1
            return
        self.clear.append(parse_rtp(rtp).payload)
        self.transport.sendto(self.context.protect(rtp), addr)


def offered_key(sipp) -> SdesKey | None:
    """The gateway's SRTP key, from the INVITE in SIPp's message trace (None until it is there)."""
    offer = re.search(r"a=crypto:(.*)", sipp._paths()["msg"].read_text(errors="replace"))
    return parse_crypto(offer.group(1)) if offer else None


async def test_an_srtp_trunk_carries_encrypted_audio_both_ways(start_gateway, peers):
    carrier_key = SdesKey.generate()
    echo_port = free_udp_port()
    sipp = await peers(uas("uas_answer_srtp", timeout_s=60, scenario_vars={
        "RTP_PORT": str(echo_port), "CRYPTO_KEY": base64.b64encode(carrier_key.key_salt).decode()}))
    transport, echo = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: SrtpEcho(carrier_key, lambda: offered_key(sipp)), local_addr=("127.0.0.1", echo_port))
    try:
        gateway = await start_gateway(carrier(sipp.port, srtp=True))
        client, watch = await watched_client(gateway)
        call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.MUSIC_ON_HOLD, max_duration_ms=3000)
        hangup = await watch.hangup(call.call_sid)
    finally:
        transport.close()
    assert hangup.status == "TIMEOUT"
    assert len(echo.clear) > 40 and echo.refused == 0
    assert all(len(p) == 160 and PCMU.encode(PCMU.decode(p)) == p for p in echo.clear)
    assert hangup.packets_received > 40
    assert hangup.packets_sent > 40 and hangup.bytes_sent == hangup.packets_sent * 160
    assert 4.0 < hangup.estimated_mos <= 4.5 and hangup.packets_lost == 0
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()
    invite = result.requests("INVITE", "received")[0]
    assert "m=audio" in invite.body and "RTP/SAVP" in invite.body and "AES_CM_128_HMAC_SHA1_80" in invite.body


async def test_an_srtp_trunk_refuses_a_carrier_that_answers_plain_rtp(start_gateway, peers, caplog):
    sipp = await peers(uas("uas_answer", rtp_echo=True, timeout_s=30))
    gateway = await start_gateway(carrier(sipp.port, srtp=True))
    client, watch = await watched_client(gateway)
    call = await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.MUSIC_ON_HOLD)
    hangup = await watch.hangup(call.call_sid)
    assert (hangup.status, hangup.q850_cause) == ("FAILED", 65)  # 488 Not Acceptable Here (RFC 3398)
    assert "this trunk requires SRTP; the far end offered RTP/AVP" in caplog.text
    result = await sipp.await_result(timeout=10)
    assert result.ok, result.describe()  # the answered call was ended with a BYE
