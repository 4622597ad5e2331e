"""SRTP with SDES keys: the crypto attribute both ways, and packets that round-trip, authenticate
and are refused when forged or replayed."""

from __future__ import annotations

import base64

import pytest

from trunkline.media.rtcp import ReceiverReport, build_rtcp, parse_rtcp
from trunkline.media.rtp import RtpPacket, build_rtp, parse_rtp
from trunkline.media.srtp import SUITE, SdesKey, SrtpContext, SrtpError, parse_crypto, pick_crypto

KEY = bytes(range(30))
RFC_4568_EXAMPLE = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"


def test_the_attribute_round_trips_and_parses_the_rfcs_example():
    key = SdesKey(3, KEY)
    assert key.attribute_value() == f"3 {SUITE} inline:{base64.b64encode(KEY).decode()}"
    assert parse_crypto(key.attribute_value()) == key
    assert parse_crypto(RFC_4568_EXAMPLE).tag == 1 and len(parse_crypto(RFC_4568_EXAMPLE).key_salt) == 30


@pytest.mark.parametrize("value, problem", [
    ("1 AES_CM_128_HMAC_SHA1_32 inline:" + base64.b64encode(KEY).decode(), "suite AES_CM_128_HMAC_SHA1_32 is not supported"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(KEY[:20]).decode(), "is 20 bytes"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(KEY).decode() + "|2^20|1:4", "lifetime/MKI"),
    ("AES_CM_128_HMAC_SHA1_80 inline:abc", "malformed"),
])
def test_attributes_we_cannot_use_say_why(value, problem):
    with pytest.raises(SrtpError, match=problem.replace("^", r"\^").replace("|", r"\|")):
        parse_crypto(value)


def test_an_offer_with_several_suites_gets_the_first_usable_one():
    usable = SdesKey(2, KEY).attribute_value()
    assert pick_crypto(["1 AEAD_AES_256_GCM inline:" + base64.b64encode(bytes(44)).decode(), usable]).tag == 2
    with pytest.raises(SrtpError, match="no usable crypto attribute: none offered"):
        pick_crypto([])


def test_packets_round_trip_between_two_ends_and_forgeries_and_replays_are_refused():
    alice_key, bob_key = SdesKey.generate(), SdesKey.generate()
    alice, bob = SrtpContext(alice_key, bob_key), SrtpContext(bob_key, alice_key)
    packet = build_rtp(RtpPacket(0, 7, 1120, 0xCAFE, b"\xff" * 160))
    protected = alice.protect(packet)
    assert protected != packet and len(protected) == len(packet) + 10  # the 80-bit tag
    assert parse_rtp(bob.unprotect(protected)).payload == b"\xff" * 160
    with pytest.raises(SrtpError, match="refused"):
        bob.unprotect(protected)  # the same packet again: a replay
    forged = bytearray(alice.protect(build_rtp(RtpPacket(0, 8, 1280, 0xCAFE, b"\x7f" * 160))))
    forged[20] ^= 1
    with pytest.raises(SrtpError, match="refused"):
        bob.unprotect(bytes(forged))
    stranger = SrtpContext(SdesKey.generate(), SdesKey.generate())
    with pytest.raises(SrtpError):
        bob.unprotect(stranger.protect(build_rtp(RtpPacket(0, 9, 1440, 0xCAFE, b"\x00" * 160))))


def test_rtcp_round_trips_as_srtcp():
    alice_key, bob_key = SdesKey.generate(), SdesKey.generate()
    alice, bob = SrtpContext(alice_key, bob_key), SrtpContext(bob_key, alice_key)
    report = build_rtcp([ReceiverReport(0xCAFE)])
    protected = alice.protect_rtcp(report)
    assert protected != report
    assert parse_rtcp(bob.unprotect_rtcp(protected)) == [ReceiverReport(0xCAFE)]
    with pytest.raises(SrtpError, match="SRTCP packet refused"):
        bob.unprotect_rtcp(protected)
