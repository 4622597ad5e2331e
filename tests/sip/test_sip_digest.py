from typing import Any

import pytest

from trunkline.sip.digest import (
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    DigestVerifier,
    VerifyResult,
    compute_response,
    parse_auth_header,
)
from trunkline.sip.message import Headers, SipParseError, SipResponse

# RFC 7616 §3.9.1 (password "Circle of Life", erratum 4495).
RFC7616: dict[str, Any] = dict(
    username="Mufasa", password="Circle of Life", realm="http-auth@example.org",
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", method="GET", uri="/dir/index.html",
    qop="auth", nc="00000001", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
)


def test_rfc2617_example_vector() -> None:
    assert compute_response(
        algorithm="MD5", username="Mufasa", password="Circle Of Life",
        realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET",
        uri="/dir/index.html", qop="auth", nc="00000001", cnonce="0a4f113b",
    ) == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_vectors(algorithm: str, expected: str) -> None:
    assert compute_response(algorithm=algorithm, **RFC7616) == expected


def test_client_reproduces_rfc7616_vector() -> None:
    challenge = DigestChallenge.parse(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert challenge.qop == ("auth", "auth-int") and challenge.algorithm == "SHA-256"
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616["cnonce"])
    creds = client.authorize(challenge, "GET", "/dir/index.html")
    assert creds.response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    header = creds.to_header()
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header
    assert "qop=auth, nc=00000001" in header
    assert DigestCredentials.parse(header) == creds


def test_no_qop_rfc2069_form() -> None:
    challenge = DigestChallenge.parse('Digest realm="sip.example", nonce="abc"')
    creds = DigestClient("u", "p").authorize(challenge, "REGISTER", "sip:sip.example")
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert "qop" not in creds.to_header() and "cnonce" not in creds.to_header()
    assert creds.response == compute_response(
        algorithm="MD5", username="u", password="p", realm="sip.example", nonce="abc",
        method="REGISTER", uri="sip:sip.example")


def test_auth_int_hashes_body() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth-int"')
    client = DigestClient("u", "p", cnonce_factory=lambda: "c")
    a = client.authorize(challenge, "INVITE", "sip:x", b"body-1")
    b = DigestClient("u", "p", cnonce_factory=lambda: "c").authorize(
        challenge, "INVITE", "sip:x", b"body-2")
    assert a.qop == "auth-int" and a.response != b.response


def test_nonce_count_increments_per_nonce_and_resets_on_new_nonce() -> None:
    client = DigestClient("u", "p")
    first = DigestChallenge.parse('Digest realm="r", nonce="n1", qop="auth"')
    assert [client.authorize(first, "INVITE", "sip:x").nc for _ in range(3)] == [
        "00000001", "00000002", "00000003"]
    second = DigestChallenge.parse('Digest realm="r", nonce="n2", qop="auth"')
    assert client.authorize(second, "INVITE", "sip:x").nc == "00000001"


def challenge_response(status: int, *challenges: str) -> SipResponse:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return SipResponse(status, headers=Headers([(name, c) for c in challenges]))


def test_answer_picks_strongest_algorithm_per_realm() -> None:
    resp = challenge_response(
        401,
        'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"',
    )
    headers = DigestClient("u", "p").answer(resp, "INVITE", "sip:x")
    assert headers is not None and len(headers) == 1
    name, value = headers[0]
    assert name == "Authorization" and "algorithm=SHA-256" in value


def test_answer_uses_proxy_headers_for_407() -> None:
    headers = DigestClient("u", "p").answer(
        challenge_response(407, 'Digest realm="proxy", nonce="n"'), "INVITE", "sip:x")
    assert headers is not None and headers[0][0] == "Proxy-Authorization"


def test_answer_refuses_to_loop_on_wrong_password_but_retries_stale() -> None:
    client = DigestClient("u", "wrong")
    first = client.answer(challenge_response(401, 'Digest realm="r", nonce="n1"'), "INVITE", "sip:x")
    assert first is not None
    again = challenge_response(401, 'Digest realm="r", nonce="n2"')
    assert client.answer(again, "INVITE", "sip:x", previous=first) is None
    stale = challenge_response(401, 'Digest realm="r", nonce="n2", stale=TRUE')
    retry = client.answer(stale, "INVITE", "sip:x", previous=first)
    assert retry is not None and 'nonce="n2"' in retry[0][1]


def test_answer_ignores_unusable_challenges() -> None:
    client = DigestClient("u", "p")
    assert client.answer(challenge_response(401, 'Basic realm="r"'), "INVITE", "sip:x") is None
    assert client.answer(challenge_response(401, 'Digest realm="r", nonce="n", qop="x"'),
                         "INVITE", "sip:x") is None
    assert client.answer(SipResponse(403), "INVITE", "sip:x") is None


def test_parse_auth_header_quoting() -> None:
    scheme, params = parse_auth_header('Digest realm="a\\"b, c", nonce=xyz ,stale=true,')
    assert scheme == "Digest"
    assert params == {"realm": 'a"b, c', "nonce": "xyz", "stale": "true"}
    for bad in ['Digest realm="x', "Digest realm", ""]:
        with pytest.raises(SipParseError):
            parse_auth_header(bad)
    with pytest.raises(SipParseError):
        DigestChallenge.parse('Digest realm="r"')


# --------------------------------------------------------------------------- server side


def test_verifier_round_trip_and_replay() -> None:
    verifier = DigestVerifier(realm="trunkline", secret=b"k" * 32)
    challenge = DigestChallenge.parse(verifier.challenge(100.0))
    client = DigestClient("alice", "pw")
    creds = client.authorize(challenge, "INVITE", "sip:bob@x")
    check: dict[str, Any] = dict(method="INVITE", password="pw", request_uri="sip:bob@x")
    assert verifier.verify(creds, now=101.0, **check) is VerifyResult.OK
    assert verifier.verify(creds, now=101.0, **check) is VerifyResult.FAILED  # nc replay
    assert verifier.verify(client.authorize(challenge, "INVITE", "sip:bob@x"), now=102.0,
                           **check) is VerifyResult.OK
    assert verifier.verify(creds, method="INVITE", password="other", now=103.0) is (
        VerifyResult.FAILED)


def test_verifier_stale_and_forged_nonces() -> None:
    verifier = DigestVerifier(realm="trunkline", secret=b"s", nonce_ttl=60.0)
    challenge = DigestChallenge.parse(verifier.challenge(0.0))
    creds = DigestClient("alice", "pw").authorize(challenge, "INVITE", "sip:bob@x")
    assert verifier.verify(creds, method="INVITE", password="pw", now=61.0) is VerifyResult.STALE
    assert "stale=TRUE" in verifier.challenge(61.0, stale=True)
    other = DigestVerifier(realm="trunkline", secret=b"different")
    assert other.verify(creds, method="INVITE", password="pw", now=1.0) is VerifyResult.FAILED
    forged = DigestChallenge(realm="trunkline", nonce="bm90LWEtbm9uY2U", qop=("auth",))
    fake = DigestClient("alice", "pw").authorize(forged, "INVITE", "sip:bob@x")
    assert verifier.verify(fake, method="INVITE", password="pw", now=1.0) is VerifyResult.FAILED


def test_verifier_rejects_wrong_realm_uri_and_missing_qop() -> None:
    verifier = DigestVerifier(realm="trunkline", secret=b"s")
    challenge = DigestChallenge.parse(verifier.challenge(0.0))
    client = DigestClient("alice", "pw")
    creds = client.authorize(challenge, "INVITE", "sip:bob@x")
    assert verifier.verify(creds, method="INVITE", password="pw", now=1.0,
                           request_uri="sip:carol@x") is VerifyResult.FAILED
    assert verifier.verify(creds, method="BYE", password="pw", now=1.0) is VerifyResult.FAILED
    no_qop = DigestChallenge(realm="trunkline", nonce=challenge.nonce)
    assert verifier.verify(client.authorize(no_qop, "INVITE", "sip:bob@x"), method="INVITE",
                           password="pw", now=1.0) is VerifyResult.FAILED
    md5 = DigestChallenge.parse(verifier.challenge(0.0, algorithm="MD5"))
    assert verifier.verify(client.authorize(md5, "INVITE", "sip:b"), method="INVITE",
                           password="pw", now=1.0) is VerifyResult.OK
