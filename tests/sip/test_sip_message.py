import pytest

from trunkline.sip.message import (
    BRANCH_MAGIC_COOKIE,
    CSeq,
    Headers,
    NameAddr,
    ParserLimits,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    StreamParser,
    Via,
    build_response,
    generate_branch,
    generate_call_id,
    generate_tag,
    parse_message,
    parse_params,
    split_header_list,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"To: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_parse_request_fields() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:bob@biloxi.example.com"
    assert msg.body == b"v=0\n"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.from_addr.tag == "1928301774"
    assert msg.from_addr.display_name == "Alice"
    assert msg.to_addr.tag is None
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP", "pc33.atlanta.example.com", 5060, "z9hG4bK776asdhds")
    assert "rport" in via.params and via.rport is None


def test_parse_response_fields() -> None:
    msg = parse_message(RESPONSE)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to_addr.tag == "a6c85cf"
    assert msg.body == b""


def test_reason_phrase_may_contain_spaces_or_be_empty() -> None:
    msg = parse_message(RESPONSE.replace(b"180 Ringing", b"481 Call/Transaction Does Not Exist"))
    assert isinstance(msg, SipResponse) and msg.reason == "Call/Transaction Does Not Exist"
    msg = parse_message(RESPONSE.replace(b"180 Ringing", b"180 "))
    assert isinstance(msg, SipResponse) and msg.reason == ""


def test_header_names_are_case_insensitive() -> None:
    msg = parse_message(INVITE.replace(b"Call-ID:", b"cAlL-iD:"))
    assert msg.headers.get("call-id") == msg.headers.get("CALL-ID") == msg.call_id
    assert ("Call-ID", msg.call_id) in list(msg.headers)


def test_compact_forms_are_expanded() -> None:
    data = (
        b"MESSAGE sip:a@b SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: cid\r\nCSeq: 1 MESSAGE\r\n"
        b"m: <sip:x@h>\r\ne: gzip\r\nc: text/plain\r\ns: hi\r\nk: timer\r\no: dialog\r\n"
        b"u: presence\r\nr: <sip:c@d>\r\nb: <sip:e@f>\r\nx: 1800\r\ny: sig\r\nl: 2\r\n\r\nok"
    )
    msg = parse_message(data)
    names = [name for name, _ in msg.headers]
    assert names == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Encoding", "Content-Type",
        "Subject", "Supported", "Event", "Allow-Events", "Refer-To", "Referred-By",
        "Session-Expires", "Identity", "Content-Length",
    ]
    assert msg.body == b"ok"
    assert msg.headers.get("Content-Type") == "text/plain"


def test_folded_header_lines_are_joined() -> None:
    data = INVITE.replace(
        b"Max-Forwards: 70\r\n", b"Subject: I know you're there,\r\n   pick up the phone\r\n\tnow\r\n")
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone now"


def test_comma_separated_values_are_split_where_allowed() -> None:
    data = INVITE.replace(
        b"Max-Forwards: 70\r\n",
        b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bKa, SIP/2.0/UDP p2:5070;branch=z9hG4bKb\r\n"
        b'Record-Route: <sip:p1;lr>, "a,b" <sip:p2;lr>\r\n'
        b'Subject: one, two\r\n'
        b'Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n',
    )
    msg = parse_message(data)
    assert [v.host for v in msg.vias] == ["pc33.atlanta.example.com", "p1.example.com", "p2"]
    assert msg.headers.get_all("Record-Route") == ["<sip:p1;lr>", '"a,b" <sip:p2;lr>']
    assert msg.headers.get("Subject") == "one, two"
    assert msg.headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"


def test_contact_list_with_quoted_commas() -> None:
    values = split_header_list('"Doe, John" <sip:j@x>;q=0.7, sip:k@y;expires=60')
    assert values == ['"Doe, John" <sip:j@x>;q=0.7', "sip:k@y;expires=60"]
    first, second = (NameAddr.parse(v) for v in values)
    assert first.display_name == "Doe, John" and first.params == {"q": "0.7"}
    assert second.uri == "sip:k@y" and second.params == {"expires": "60"}


def test_leading_crlf_keepalives_are_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + INVITE).method == "INVITE"  # type: ignore[union-attr]


def test_bare_lf_line_endings_are_tolerated() -> None:
    msg = parse_message(RESPONSE.replace(b"\r\n", b"\n"))
    assert isinstance(msg, SipResponse) and msg.call_id == "a84b4c76e66710"


def test_udp_body_is_truncated_to_content_length() -> None:
    assert parse_message(INVITE + b"garbage").body == b"v=0\n"


def test_udp_without_content_length_takes_rest() -> None:
    data = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_message(data).body == b"v=0\n"


@pytest.mark.parametrize(
    ("data", "respondable"),
    [
        (b"", False),
        (b"\r\n\r\n", False),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n", True),  # no blank line: the datagram is the head
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), True),
        (INVITE.replace(b"INVITE sip:bob", b"INV<TE sip:bob"), False),
        (INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"bob SIP"), True),
        (RESPONSE.replace(b"180", b"18x"), False),
        (RESPONSE.replace(b"180", b"700"), False),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 40"), True),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: -1"), True),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), True),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), True),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 4294967296 INVITE"), True),
        (INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""), True),
        (INVITE.replace(b"Via: SIP/2.0/UDP", b"Via: SIP2.0UDP"), True),
        (INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), True),
        (INVITE.replace(b"Max-Forwards: 70", b" folded-first"), True),
        (INVITE.replace(b'From: "Alice" <sip:', b'From: "Alice <sip:'), True),
        (INVITE.replace(b"Max-Forwards", "Mäx".encode("latin-1")), False),
        (INVITE.replace(b"Max-Forwards: 70", b"X: a\rb"), True),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 INVITE\r\nContent-Length: 5"), True),
    ],
)
def test_malformed_messages_raise_parse_error(data: bytes, respondable: bool) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.can_respond is respondable


def test_parse_error_partial_allows_a_400() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"Content-Length: 4", b"Content-Length: 99"))
    partial = info.value.partial
    assert partial is not None
    response = build_response(partial, 400)
    assert response.headers.get("Call-ID") == partial.call_id


def test_ack_parse_error_is_never_respondable() -> None:
    ack = INVITE.replace(b"INVITE", b"ACK").replace(b"Content-Length: 4", b"Content-Length: 9")
    with pytest.raises(SipParseError) as info:
        parse_message(ack)
    assert info.value.partial is not None and not info.value.can_respond


def test_size_limits() -> None:
    with pytest.raises(SipParseError):
        parse_message(INVITE + b"x" * 70000)
    small = ParserLimits(max_message_size=65536, max_header_line=50, max_headers=20)
    with pytest.raises(SipParseError):
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * 60), small)
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 20)
    with pytest.raises(SipParseError):
        parse_message(many, small)
    assert parse_message(many).headers.get_all("X-A") == ["1"] * 20


def test_serialize_round_trip_recomputes_content_length() -> None:
    msg = parse_message(INVITE)
    msg.body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n"
    wire = msg.to_bytes()
    assert wire.count(b"Content-Length") == 1
    assert f"\r\nContent-Length: {len(msg.body)}\r\n\r\n".encode() in wire
    again = parse_message(wire)
    assert again.body == msg.body
    assert list(again.headers) == list(msg.headers)[:-1] + [("Content-Length", str(len(msg.body)))]


def test_serializer_refuses_header_injection() -> None:
    msg = parse_message(RESPONSE)
    msg.headers.add("X-Evil", "a\r\nVia: forged")
    with pytest.raises(ValueError):
        msg.to_bytes()


def test_headers_multimap_operations() -> None:
    h = Headers([("Via", "a"), ("X-Y", "1"), ("v", "b")])
    assert h.get_all("VIA") == ["a", "b"]
    h.set("via", "c")
    assert list(h) == [("Via", "c"), ("X-Y", "1")]
    assert h.remove("x-y") == 1 and "X-Y" not in h
    h.set("Route", "<sip:r>")
    assert list(h)[-1] == ("Route", "<sip:r>")
    copy = h.copy()
    copy.add("Route", "<sip:s>")
    assert copy != h and len(h) == 2


def test_sip_uri_parse_and_format() -> None:
    uri = SipUri.parse("sips:alice;day=tue:secret@[2001:db8::1]:5061;transport=TLS;lr?subject=x&p=y")
    assert uri.scheme == "sips"
    assert uri.user == "alice;day=tue" and uri.password == "secret"
    assert uri.host == "[2001:db8::1]" and uri.port == 5061
    assert uri.params == {"transport": "TLS", "lr": None}
    assert uri.transport == "tls" and uri.loose_route
    assert uri.headers == {"subject": "x", "p": "y"}
    assert str(uri) == "sips:alice;day=tue:secret@[2001:db8::1]:5061;transport=TLS;lr?subject=x&p=y"
    assert str(SipUri.parse("sip:example.com")) == "sip:example.com"


@pytest.mark.parametrize(
    "text", ["tel:+123", "sip:", "sip:a@", "sip:a@b:99999", "sip:a@b:x", "sip:@b", "sip:a@[::1",
             "sip:a b@c", "sip:h;=x"],
)
def test_sip_uri_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(text)


def test_name_addr_forms() -> None:
    a = NameAddr.parse('"Alice \\"A\\"" <sip:a@b;transport=udp>;tag=x;foo')
    assert a.display_name == 'Alice "A"'
    assert a.uri == "sip:a@b;transport=udp"
    assert a.params == {"tag": "x", "foo": None}
    assert str(a) == '"Alice \\"A\\"" <sip:a@b;transport=udp>;tag=x;foo'
    b = NameAddr.parse("Bob Smith <tel:+15551234>")
    assert (b.display_name, b.uri, b.tag) == ("Bob Smith", "tel:+15551234", None)
    c = NameAddr.parse("sip:c@d;tag=9")  # addr-spec: params belong to the header
    assert (c.uri, c.tag) == ("sip:c@d", "9")
    assert NameAddr.parse("*").uri == "*" and str(NameAddr.parse(" * ")) == "*"
    assert c.sip_uri().host == "d"


@pytest.mark.parametrize("text", ["<sip:a@b", '"x <sip:a@b>', "nouri", "<>", '"x" sip:a@b'])
def test_name_addr_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_via_parse_and_format() -> None:
    via = Via.parse("SIP / 2.0 / tcp 10.0.0.1:5070 ; branch=z9hG4bKx;received=1.2.3.4;rport=6000")
    assert (via.protocol, via.transport, via.host, via.port) == ("SIP/2.0", "TCP", "10.0.0.1", 5070)
    assert via.branch == "z9hG4bKx" and via.received == "1.2.3.4" and via.rport == 6000
    assert via.sent_by == "10.0.0.1:5070"
    assert str(via) == "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKx;received=1.2.3.4;rport=6000"
    v6 = Via.parse("SIP/2.0/UDP [::1]")
    assert v6.host == "[::1]" and v6.port is None


def test_params_and_cseq() -> None:
    assert parse_params(';a=1;B="x;y";c') == {"a": "1", "b": '"x;y"', "c": None}
    assert parse_params("") == {}
    with pytest.raises(SipParseError):
        parse_params("a=1")
    assert str(CSeq.parse(" 7   BYE ")) == "7 BYE"


def test_build_response_copies_per_8_2_6() -> None:
    req = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n",
                                       b"Via: SIP/2.0/UDP p2;branch=z9hG4bK2\r\nTimestamp: 54\r\n"))
    assert isinstance(req, SipRequest)
    ok = build_response(req, 200, to_tag="abc", headers=[("Contact", "<sip:b@h>")], body=b"sdp")
    assert ok.status == 200 and ok.reason == "OK"
    assert ok.headers.get_all("Via") == req.headers.get_all("Via")
    assert ok.to_addr.tag == "abc"
    assert ok.headers.get("From") == req.headers.get("From")
    assert ok.cseq == req.cseq and ok.call_id == req.call_id
    assert ok.headers.get("Contact") == "<sip:b@h>" and ok.body == b"sdp"
    assert "Timestamp" not in ok.headers
    trying = build_response(req, 100, to_tag="abc")
    assert trying.to_addr.tag is None and trying.headers.get("Timestamp") == "54"
    # An existing To tag (in-dialog request) is never replaced.
    tagged = parse_message(RESPONSE)
    in_dialog = SipRequest("BYE", "sip:x", tagged.headers.copy())
    in_dialog.headers.set("CSeq", "2 BYE")
    assert build_response(in_dialog, 200, to_tag="new").to_addr.tag == "a6c85cf"


def test_generators() -> None:
    branches = {generate_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith(BRANCH_MAGIC_COOKIE) for b in branches)
    assert generate_tag() != generate_tag()
    assert generate_call_id("h.example").endswith("@h.example")


# --------------------------------------------------------------------------- stream parser


def test_stream_parser_byte_by_byte() -> None:
    parser = StreamParser()
    out = []
    stream = b"\r\n\r\n" + INVITE + b"\r\n" + RESPONSE
    for i in range(len(stream)):
        out.extend(parser.feed(stream[i : i + 1]))
    assert [type(m) for m in out] == [SipRequest, SipResponse]
    assert out[0].body == b"v=0\n"


def test_stream_parser_many_in_one_chunk() -> None:
    parser = StreamParser()
    msgs = parser.feed(INVITE + RESPONSE + INVITE[:20])
    assert len(msgs) == 2
    assert parser.feed(INVITE[20:]) and parser.feed(b"") == []


def test_stream_parser_missing_content_length_is_fatal() -> None:
    parser = StreamParser()
    with pytest.raises(SipParseError) as info:
        parser.feed(RESPONSE.replace(b"Content-Length: 0\r\n", b""))
    assert info.value.fatal
    with pytest.raises(SipParseError):
        parser.feed(RESPONSE)


def test_stream_parser_skips_bad_message_with_known_length() -> None:
    parser = StreamParser()
    bad = INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE")
    with pytest.raises(SipParseError) as info:
        parser.feed(RESPONSE + bad + RESPONSE)
    assert not info.value.fatal and info.value.can_respond
    # The message before the bad one is not lost; the one after it is parsed too.
    assert len(parser.feed(b"")) == 2


def test_stream_parser_skips_malformed_head_when_length_is_findable() -> None:
    parser = StreamParser()
    bad = INVITE.replace(b"Max-Forwards: 70", b"Bad Header 70")
    with pytest.raises(SipParseError) as info:
        parser.feed(bad[:-2])  # body not complete yet
    assert not info.value.fatal
    assert parser.feed(bad[-2:] + RESPONSE)[0].status == 180  # type: ignore[union-attr]


def test_stream_parser_oversized_head_is_fatal() -> None:
    parser = StreamParser(ParserLimits(max_message_size=1000))
    with pytest.raises(SipParseError) as info:
        for _ in range(20):
            parser.feed(b"X-Filler: " + b"a" * 100 + b"\r\n")
    assert info.value.fatal


def test_stream_parser_oversized_body_is_fatal() -> None:
    parser = StreamParser()
    with pytest.raises(SipParseError) as info:
        parser.feed(INVITE.replace(b"Content-Length: 4", b"Content-Length: 999999"))
    assert info.value.fatal
