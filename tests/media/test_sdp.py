from dataclasses import replace

import pytest

from trunkline.media.errors import SdpError, SdpNegotiationError
from trunkline.media.rtp import RtpPacket, build_rtp
from trunkline.media.sdp import (
    SdpSession,
    SessionDescription,
    answer,
    bump_version,
    intersect_directions,
    invert_direction,
    make_offer,
    parse_sdp,
)
from trunkline.media.srtp import SrtpContext

TRUNK_OFFER = (
    "v=0\r\n"
    "o=- 3841234567 3841234567 IN IP4 203.0.113.10\r\n"
    "s=SBC\r\n"
    "c=IN IP4 203.0.113.10\r\n"
    "b=AS:84\r\n"
    "t=0 0\r\n"
    "m=audio 20000 RTP/AVP 18 8 0 96\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=fmtp:18 annexb=no\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:96 telephone-event/8000\r\n"
    "a=fmtp:96 0-16\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:40\r\n"
    "a=sendrecv\r\n"
)


def offer_with(direction="sendrecv", *, address="198.51.100.7", port=4000, formats="0 8 101"):
    return (
        "v=0\n"
        f"o=peer 1 1 IN IP4 {address}\n"
        "s=-\n"
        f"c=IN IP4 {address}\n"
        "t=0 0\n"
        f"m=audio {port} RTP/AVP {formats}\n"
        "a=rtpmap:101 telephone-event/8000\n"
        f"a={direction}\n"
    )


def test_parse_trunk_offer():
    sd = parse_sdp(TRUNK_OFFER)
    assert sd.origin.session_id == "3841234567" and sd.origin.version == 3841234567
    assert sd.connection is not None and sd.connection.address == "203.0.113.10"
    (m,) = sd.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 20000, "RTP/AVP", ("18", "8", "0", "96"))
    assert [c.encoding for c in m.codecs()] == ["G729", "PCMA", "PCMU", "telephone-event"]
    assert m.fmtp(96) == "0-16" and m.fmtp(18) == "annexb=no"
    assert m.ptime == 20 and m.direction == "sendrecv"
    assert m.attribute("maxptime") == "40"
    assert sd.extra == (("b", "AS:84"),)


def test_serialize_round_trip_preserves_unknown_lines():
    sd = parse_sdp(TRUNK_OFFER.encode())
    text = sd.serialize()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert parse_sdp(text) == sd
    assert text == TRUNK_OFFER  # already in canonical order


def test_static_payload_types_need_no_rtpmap():
    sd = parse_sdp(offer_with(formats="8 0"))
    assert [(c.payload_type, c.encoding, c.clock_rate) for c in sd.media[0].codecs()] == [
        (8, "PCMA", 8000),
        (0, "PCMU", 8000),
    ]


@pytest.mark.parametrize(
    "offered,answered",
    [("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive")],
)
def test_answer_inverts_direction(offered, answered):
    sdp, neg = answer(offer_with(offered), "192.0.2.1", 5000)
    assert sdp.media[0].direction == answered
    assert neg.remote_direction == offered
    assert neg.local_direction == answered
    assert neg.may_send == (answered in ("sendrecv", "sendonly"))


def test_direction_defaults_to_session_level_then_sendrecv():
    text = offer_with().replace("a=sendrecv\n", "")
    assert answer(text, "192.0.2.1", 5000)[1].remote_direction == "sendrecv"
    session_level = text.replace("t=0 0\n", "t=0 0\na=sendonly\n")
    assert answer(session_level, "192.0.2.1", 5000)[0].media[0].direction == "recvonly"


def test_local_hold_narrows_the_answer():
    sdp, neg = answer(offer_with("sendrecv"), "192.0.2.1", 5000, direction="sendonly")
    assert neg.local_direction == "sendonly"
    assert answer(offer_with("sendonly"), "192.0.2.1", 5000, direction="sendonly")[1].local_direction == "inactive"
    assert intersect_directions("recvonly", "sendrecv") == "recvonly"
    assert invert_direction("sendonly") == "recvonly"


def test_old_style_hold_address_means_do_not_send():
    _, neg = answer(offer_with("sendrecv", address="0.0.0.0"), "192.0.2.1", 5000)
    assert neg.remote_direction == "sendonly"
    assert neg.local_direction == "recvonly" and not neg.may_send


def test_codec_negotiation_follows_offer_order_and_mirrors_payload_types():
    sdp, neg = answer(TRUNK_OFFER, "192.0.2.1", 5000, ("PCMU", "PCMA"))
    assert (neg.codec, neg.payload_type, neg.telephone_event_pt) == ("PCMA", 8, 96)
    assert (neg.remote_address, neg.remote_port, neg.remote_ptime) == ("203.0.113.10", 20000, 20)
    m = sdp.media[0]
    assert m.formats == ("8", "96") and m.port == 5000
    assert m.rtpmaps()[96].encoding == "telephone-event"
    assert sdp.connection is not None and sdp.connection.address == "192.0.2.1"
    assert answer(TRUNK_OFFER, "192.0.2.1", 5000, ("PCMU",))[1].codec == "PCMU"
    no_dtmf = answer(TRUNK_OFFER, "192.0.2.1", 5000, dtmf=False)
    assert no_dtmf[1].telephone_event_pt is None and no_dtmf[0].media[0].formats == ("8",)


def test_offer_without_supported_codec_is_rejected_clearly():
    with pytest.raises(SdpNegotiationError, match="G729"):
        answer(offer_with(formats="18 101").replace("a=rtpmap:101", "a=rtpmap:18 G729/8000\na=rtpmap:101"),
               "192.0.2.1", 5000)
    with pytest.raises(SdpNegotiationError):
        answer(offer_with().replace("RTP/AVP", "RTP/SAVP"), "192.0.2.1", 5000)


def test_other_streams_rejected_with_port_zero():
    text = offer_with() + "m=video 6000 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    text = text.replace("m=audio", "m=video 7000 RTP/AVP 97\nm=audio")
    sdp, neg = answer(text, "192.0.2.1", 5000)
    assert [(m.media, m.port) for m in sdp.media] == [("video", 0), ("audio", 5000), ("video", 0)]
    assert neg.remote_port == 4000


def test_media_level_connection_overrides_session_level():
    text = offer_with().replace("a=rtpmap", "c=IN IP4 198.51.100.99\na=rtpmap")
    assert answer(text, "192.0.2.1", 5000)[1].remote_address == "198.51.100.99"
    missing = offer_with().replace("c=IN IP4 198.51.100.7\n", "")
    with pytest.raises(SdpError):
        answer(missing, "192.0.2.1", 5000)


def test_make_offer():
    sd = make_offer("192.0.2.1", 4000, session_id="42")
    text = sd.serialize()
    assert "m=audio 4000 RTP/AVP 0 8 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n" in text
    assert "a=ptime:20\r\na=sendrecv\r\n" in text
    assert text.startswith("v=0\r\no=trunkline 42 0 IN IP4 192.0.2.1\r\n")
    assert make_offer("2001:db8::1", 4000, ("PCMA",), dtmf=False, direction="sendonly").serialize().count("IP6") == 2
    held = make_offer("192.0.2.1", 4000, direction="sendonly").media[0]
    assert held.direction == "sendonly" and held.formats == ("0", "8", "101")
    with pytest.raises(SdpError):
        make_offer("192.0.2.1", 4000, ("G722",))


def test_offer_answer_between_two_trunkline_sides():
    alice = SdpSession("192.0.2.1", 4000, ("PCMA", "PCMU"), session_id="1")
    bob = SdpSession("192.0.2.2", 6000, ("PCMU", "PCMA"), session_id="2")
    answer_sdp, at_bob = bob.receive_offer(alice.create_offer().to_bytes())
    at_alice = alice.receive_answer(answer_sdp.serialize())
    assert at_bob.codec == at_alice.codec == "PCMA"
    assert (at_alice.remote_address, at_alice.remote_port) == ("192.0.2.2", 6000)
    assert (at_bob.remote_address, at_bob.remote_port) == ("192.0.2.1", 4000)
    assert at_alice.telephone_event_pt == at_bob.telephone_event_pt == 101
    # Alice holds: a changed offer, so a new version; Bob's answer changes too.
    hold = alice.create_offer("sendonly")
    assert hold.origin.version == 1
    answer2, at_bob2 = bob.receive_offer(hold)
    assert answer2.origin.version == 1 and answer2.media[0].direction == "recvonly"
    assert alice.receive_answer(answer2).local_direction == "sendonly"
    assert not at_bob2.may_send


def test_reoffer_with_new_address_updates_remote_and_versions():
    session = SdpSession("192.0.2.1", 5000, session_id="9")
    first, neg1 = session.receive_offer(offer_with(port=4000))
    assert first.origin.version == 0 and (neg1.remote_address, neg1.remote_port) == ("198.51.100.7", 4000)
    # Same offer again (session refresh): our answer is unchanged, so the version must not move.
    again, _ = session.receive_offer(offer_with(port=4000))
    assert again.origin.version == 0 and again == first
    # The peer moved its media: new c= and m= port.
    moved, neg2 = session.receive_offer(offer_with(address="198.51.100.8", port=4100))
    assert (neg2.remote_address, neg2.remote_port) == ("198.51.100.8", 4100)
    assert session.negotiated == neg2
    assert moved.origin.version == 0  # our side did not change
    held, neg3 = session.receive_offer(offer_with("sendonly", address="198.51.100.8", port=4100))
    assert held.origin.version == 1 and neg3.local_direction == "recvonly"
    assert held.origin.session_id == "9"


def test_bump_version():
    sd = make_offer("192.0.2.1", 4000, session_id="5", version=7)
    bumped = bump_version(sd)
    assert bumped.origin.version == 8 and "o=trunkline 5 8 IN IP4" in bumped.serialize()
    assert bumped.media == sd.media


def test_answer_rejection_is_reported():
    session = SdpSession("192.0.2.1", 5000)
    session.create_offer()
    with pytest.raises(SdpNegotiationError):
        session.receive_answer(offer_with(port=0))
    with pytest.raises(SdpNegotiationError):
        session.receive_answer(offer_with(formats="18"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "o=- 1 1 IN IP4 1.2.3.4\n",
        "v=1\no=- 1 1 IN IP4 1.2.3.4\n",
        "v=0\ns=-\n",  # no o=
        "v=0\no=- 1 1 IN IP4\n",
        "v=0\no=- 1 x IN IP4 1.2.3.4\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nbogus\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio x RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 70000 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 4000\n",
        b"v=0\n\xff\n",
    ],
)
def test_malformed_sdp_raises(text):
    with pytest.raises(SdpError):
        parse_sdp(text)


def test_bad_rtpmap_raises_when_read():
    sd = SessionDescription.parse(offer_with().replace("a=rtpmap:101 telephone-event/8000", "a=rtpmap:101 junk"))
    with pytest.raises(SdpError):
        sd.media[0].codecs()


# --- SRTP (RTP/SAVP with SDES keys) ------------------------------------------------------------------

def test_srtp_sides_exchange_keys_and_each_decrypts_with_the_others():
    gateway, carrier = SdpSession("192.0.2.1", 4000, srtp=True), SdpSession("192.0.2.2", 6000, srtp=True)
    offer = gateway.create_offer()
    assert offer.media[0].proto == "RTP/SAVP" and offer.media[0].attribute("crypto") == gateway.crypto.attribute_value()
    answer_sdp, at_carrier = carrier.receive_offer(offer.to_bytes())
    assert at_carrier.remote_crypto == gateway.crypto
    at_gateway = gateway.receive_answer(answer_sdp.to_bytes())
    assert at_gateway.remote_crypto == carrier.crypto
    ours, theirs = SrtpContext(gateway.crypto, at_gateway.remote_crypto), SrtpContext(carrier.crypto, at_carrier.remote_crypto)
    packet = build_rtp(RtpPacket(0, 1, 160, 0xCAFE, b"\xff" * 160))
    assert theirs.unprotect(ours.protect(packet)) == packet
    assert gateway.create_offer().media[0].attribute("crypto") == gateway.crypto.attribute_value()  # no re-key


def test_srtp_and_plain_sides_do_not_agree_and_say_why():
    secure, plain = SdpSession("192.0.2.1", 4000, srtp=True), SdpSession("192.0.2.2", 6000)
    with pytest.raises(SdpNegotiationError, match="this trunk is not set up for it"):
        plain.receive_offer(secure.create_offer().to_bytes())
    with pytest.raises(SdpNegotiationError, match="this trunk requires SRTP; the far end offered RTP/AVP"):
        secure.receive_offer(plain.create_offer().to_bytes())
    with pytest.raises(SdpNegotiationError, match="requires SRTP"):
        secure.receive_answer(plain.receive_offer(SdpSession("192.0.2.3", 7000).create_offer().to_bytes())[0].to_bytes())


def test_an_offer_of_the_same_audio_in_srtp_and_in_clear_gets_the_one_this_side_does():
    secure_offer = SdpSession("192.0.2.1", 4000, srtp=True).create_offer()
    both = replace(secure_offer, media=secure_offer.media + SdpSession("192.0.2.1", 4002).create_offer().media)
    answer_sdp, negotiated = SdpSession("192.0.2.2", 6000).receive_offer(both.to_bytes())
    assert [m.port for m in answer_sdp.media] == [0, 6000] and negotiated.remote_crypto is None
    answer_sdp, negotiated = SdpSession("192.0.2.2", 6000, srtp=True).receive_offer(both.to_bytes())
    assert [m.port for m in answer_sdp.media] == [6000, 0] and negotiated.remote_crypto is not None
