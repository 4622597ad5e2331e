"""Pure helpers of the engine (no sockets) and the package's import boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trunkline.sip_engine
from trunkline.sip.message import Headers, SipResponse, parse_message
from trunkline.sip_engine.endpoint import merge_headers, uri_hostport
from trunkline.sip_engine.routing import (
    Credentials,
    RedirectPolicy,
    SipTarget,
    granted_expires,
    header_summary,
    next_hop,
    refresh_delay,
    response_target,
    stamp_via,
)

INVITE = (
    b"INVITE sip:gw@10.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKabc\r\n"
    b"Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKproxy\r\n"
    b"From: <sip:a@x>;tag=1\r\nTo: <sip:gw@10.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_stamp_via_fills_rport_and_received_and_keeps_the_via_order() -> None:
    request = parse_message(INVITE)
    via = stamp_via(request, "203.0.113.7", 40001)  # type: ignore[arg-type]
    assert via.received == "203.0.113.7" and via.rport == 40001
    vias = request.vias
    assert [v.branch for v in vias] == ["z9hG4bKabc", "z9hG4bKproxy"]
    assert vias[0].params == {"rport": "40001", "branch": "z9hG4bKabc", "received": "203.0.113.7"}
    assert response_target(vias[0], "udp") == SipTarget("203.0.113.7", 40001)


def test_stamp_via_without_rport() -> None:
    same = parse_message(INVITE.replace(b";rport", b""))
    assert stamp_via(same, "192.168.1.20", 9999).params.get("received") is None  # type: ignore[arg-type]
    assert response_target(same.top_via, "udp") == SipTarget("192.168.1.20", 5062)
    natted = parse_message(INVITE.replace(b";rport", b""))
    via = stamp_via(natted, "198.51.100.1", 9999)  # type: ignore[arg-type]
    assert response_target(via, "udp") == SipTarget("198.51.100.1", 5062)  # §18.2.2: Via port


def test_next_hop() -> None:
    trunk = SipTarget("192.0.2.1", 5060, "tcp")
    assert next_hop("sip:carrier@192.0.2.9:5080;transport=udp", trunk) == SipTarget("192.0.2.9", 5080)
    assert next_hop("sip:carrier@192.0.2.9", trunk) == SipTarget("192.0.2.9", 5060, "tcp")
    assert next_hop("sip:carrier@[2001:db8::1]:5070", trunk) == SipTarget("2001:db8::1", 5070, "tcp")
    assert next_hop("sip:carrier@sbc.example.net", trunk) is trunk  # no DNS: stay on the trunk
    assert next_hop("sip:x@192.0.2.9;transport=sctp", trunk) is trunk
    assert next_hop("tel:+15551234", trunk) is trunk


def test_next_hop_over_tls() -> None:
    """transport=tls and sips: URIs are reached over TLS, on 5061 unless they name a port (§26.2)."""
    trunk = SipTarget("192.0.2.1", 5061, "tls")
    assert next_hop("sip:carrier@192.0.2.9", trunk) == SipTarget("192.0.2.9", 5061, "tls")
    assert next_hop("sips:carrier@192.0.2.9", SipTarget("192.0.2.1", 5060)) == SipTarget("192.0.2.9", 5061, "tls")
    assert next_hop("sip:carrier@192.0.2.9:5071;transport=tls", trunk) == SipTarget("192.0.2.9", 5071, "tls")


def test_refresh_delay_is_before_expiry() -> None:
    assert refresh_delay(3600) == 3570
    assert refresh_delay(60) == 30
    assert refresh_delay(2) == 1
    assert refresh_delay(0) == 1
    for granted in range(2, 5000, 7):
        assert 0 < refresh_delay(granted) < granted


def test_granted_expires_prefers_our_contact_then_header() -> None:
    h = Headers([
        ("Contact", "<sip:other@10.0.0.9:5060>;expires=900"),
        ("Contact", "<sip:me@10.0.0.1:5080;transport=tcp>;expires=120"),
        ("Expires", "300"),
    ])
    response = SipResponse(200, headers=h)
    assert granted_expires(response, "sip:me@10.0.0.1:5080", 3600) == 120
    assert granted_expires(response, "sip:me@10.0.0.2:5080", 3600) == 300
    assert granted_expires(SipResponse(200), "sip:me@10.0.0.2", 3600) == 3600


def test_small_helpers() -> None:
    h = Headers([("Warning", "399 a"), ("Warning", "399 b"), ("Reason", "Q.850;cause=17")])
    assert header_summary(h) == {"Warning": "399 a, 399 b", "Reason": "Q.850;cause=17"}
    assert merge_headers([("Authorization", "old"), ("X", "1")], [("authorization", "new")]) == [
        ("X", "1"), ("authorization", "new")]
    assert uri_hostport("sip:alice@example.com:5070;transport=tcp") == "sip:example.com:5070"
    assert SipTarget.parse("127.0.0.1:5060", "tcp") == SipTarget("127.0.0.1", 5060, "tcp")
    assert SipTarget.parse("[::1]:5060").host == "::1"
    assert "hunter2" not in repr(Credentials("u", "hunter2"))
    with pytest.raises(ValueError):
        SipTarget("127.0.0.1", 5060, "sctp")


FORBIDDEN_LAYERS = {"media", "media_engine", "calls", "rpc", "sdk", "cli", "wire"}


def test_engine_imports_only_the_sip_core_below_it() -> None:
    files = list(Path(trunkline.sip_engine.__file__).parent.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                assert parts[0] != "threading", f"{path.name} imports {name}"
                if parts[0] == "trunkline":
                    assert parts[1] not in FORBIDDEN_LAYERS, f"{path.name} imports {name}"


def test_the_call_layer_maps_the_engines_statuses_for_no_response() -> None:
    """The call layer may not import the engine, so the numbers are agreed here."""
    from trunkline.calls import q850
    from trunkline.sip_engine.call import NO_RESPONSE, TRANSPORT_FAILED

    def outcome(status: int) -> tuple[str, int]:
        return q850.hangup_status_for_sip_status(status), q850.cause_for_sip_status(status)

    assert outcome(TRANSPORT_FAILED) == ("FAILED", 27)
    assert outcome(NO_RESPONSE) == ("FAILED", 102)
    assert outcome(408) == ("NO_ANSWER", 102) and outcome(503) == ("FAILED", 41)  # a carrier's own


def test_a_redirect_goes_to_the_best_allowed_contact_and_names_the_refused_ones() -> None:
    moved = parse_message(
        b"SIP/2.0 302 Moved\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
        b"To: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Contact: <sip:b@203.0.113.5>;q=1.0, <sip:b@10.0.0.2:5080;transport=tcp>;q=0.5\r\n"
        b"Contact: <sip:b@10.0.0.1:5062>;q=0.7\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(moved, SipResponse)
    trunk = SipTarget("10.0.0.1", 5060)
    policy = RedirectPolicy(3, frozenset({"10.0.0.1", "10.0.0.2"}))
    chosen, refused = policy.choose(moved, trunk)
    assert chosen == ("sip:b@10.0.0.1:5062", SipTarget("10.0.0.1", 5062)) and refused == ["sip:b@203.0.113.5"]
    assert RedirectPolicy(3, frozenset({"10.0.0.9"})).choose(moved, trunk)[0] is None
