"""Property tests: whatever bytes arrive, only SipParseError may escape the parsers."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trunkline.sip.message import (
    NameAddr,
    SipParseError,
    SipRequest,
    SipUri,
    StreamParser,
    Via,
    parse_message,
)

SEEDS = [
    (
        b"INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"v: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx, SIP/2.0/UDP p;received=1.2.3.4\r\n"
        b"Max-Forwards: 70\r\n"
        b'To: "Bob \\"B\\"" <sip:bob@biloxi.example.com>\r\n'
        b"f: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b'Contact: "x,y" <sip:alice@pc33.atlanta.example.com>;q=0.5, sip:z@w;expires=3\r\n'
        b"Subject: folded\r\n  continuation\r\n"
        b'WWW-Authenticate: Digest realm="r", nonce="n", qop="auth,auth-int"\r\n'
        b"Content-Type: application/sdp\r\n"
        b"l: 10\r\n"
        b"\r\n"
        b"v=0\r\ns=-\r\n"
    ),
    (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
        b"To: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
]

_ALPHABET = b'\r\n \t:;,<>"@=\\/0123456789aZ\x00\xff'
_TOKENS = [bytes([c]) for c in _ALPHABET[2:-2]] + [
    b"INVITE", b"sip:", b"sips:", b"SIP/2.0", b"z9hG4bK", b"tag=", b"[::1]", b"99999", b"\xc3",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.integers(0, 5))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == 1:
            data[pos:pos] = draw(st.binary(max_size=8))
        elif op == 2:
            data[pos:pos] = bytes([draw(st.sampled_from(list(_ALPHABET)))])
        elif op == 3:
            lines = bytes(data).split(b"\r\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
        elif op == 4:
            # Edit inside one line: byte-level edits spread over the whole message rarely land
            # in a short field such as the CSeq number.
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            at = draw(st.integers(0, len(lines[i])))
            width = draw(st.integers(0, 1))
            lines[i] = lines[i][:at] + draw(st.sampled_from(_TOKENS)) + lines[i][at + width :]
            data = bytearray(b"\r\n".join(lines))
        else:
            # Rewrite the tail of one header line: hits value grammars far more often than
            # byte-level edits spread over the whole message.
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            cut = draw(st.integers(0, len(lines[i])))
            tail = draw(st.lists(st.sampled_from(_TOKENS), max_size=8))
            lines[i] = lines[i][:cut] + b"".join(tail)
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def _exercise(msg: object) -> None:
    """Touch every structured view a caller might use after a successful parse."""
    assert not isinstance(msg, type(None))
    from trunkline.sip.message import SipRequest as Req, SipResponse as Resp

    assert isinstance(msg, (Req, Resp))
    msg.top_via
    msg.vias
    msg.cseq
    msg.from_addr
    msg.to_addr
    msg.call_id
    again = parse_message(msg.to_bytes())
    assert list(again.headers)[:-1] == [h for h in msg.headers if h[0] != "Content-Length"]
    assert again.body == msg.body


def _parse_only_sip_errors(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        exc.can_respond  # must not raise either
        return
    _exercise(msg)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _parse_only_sip_errors(data)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    _parse_only_sip_errors(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=4), st.lists(st.integers(1, 200), max_size=20))
def test_stream_parser_only_raises_parse_errors(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(messages)
    parser = StreamParser()
    pos = 0
    chunks = []
    for cut in cuts:
        chunks.append(stream[pos : pos + cut])
        pos += cut
    chunks.append(stream[pos:])
    for chunk in chunks:
        try:
            for msg in parser.feed(chunk):
                _exercise(msg)
        except SipParseError as exc:
            if exc.fatal:
                return


@settings(max_examples=500)
@given(st.text(alphabet='sip:@;=<>"\\ ,[]?&aZ09.-*\t', max_size=60))
def test_header_grammars_only_raise_parse_errors(text: str) -> None:
    for parse in (SipUri.parse, NameAddr.parse, Via.parse):
        try:
            parsed = parse(text)
        except SipParseError:
            continue
        str(parsed)


def test_seeds_are_valid() -> None:
    for seed in SEEDS:
        _parse_only_sip_errors(seed)
    assert isinstance(parse_message(SEEDS[0]), SipRequest)
