"""TokenVerifier against PROTOCOL.md §5: every rule has a token that breaks only that rule."""

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from trunkline.auth import (
    KeyRing,
    ServiceAccount,
    TenantKey,
    TokenRejected,
    TokenVerifier,
    VerifiedToken,
    create_service_account,
)

NOW = 1_750_000_000.0


@pytest.fixture(scope="module")
def es() -> tuple[ServiceAccount, str]:
    return create_service_account("acme", "es-1", "ES256")


@pytest.fixture(scope="module")
def rs() -> tuple[ServiceAccount, str]:
    return create_service_account("acme", "rs-1", "RS256")


@pytest.fixture(scope="module")
def globex() -> tuple[ServiceAccount, str]:
    return create_service_account("globex", "gx-1", "ES256")


@pytest.fixture(scope="module")
def keyring(
    es: tuple[ServiceAccount, str],
    rs: tuple[ServiceAccount, str],
    globex: tuple[ServiceAccount, str],
) -> KeyRing:
    return KeyRing({"acme": {"es-1": es[1], "rs-1": rs[1]}, "globex": {"gx-1": globex[1]}})


@pytest.fixture(scope="module")
def verifier(keyring: KeyRing) -> TokenVerifier:
    return TokenVerifier(keyring)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": "acme", "sub": "acme", "iat": int(NOW), "exp": int(NOW) + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(account: ServiceAccount, body: dict[str, Any], kid: str | None = None) -> str:
    """Signs arbitrary claims with the account's key, bypassing ServiceAccount.sign_token checks."""
    alg = "RS256" if _is_rsa(account) else "ES256"
    headers = {"kid": kid if kid is not None else account.private_key_id}
    return jwt.encode(body, account.private_key_pem, algorithm=alg, headers=headers)


def _is_rsa(account: ServiceAccount) -> bool:
    key = serialization.load_pem_private_key(account.private_key_pem.encode(), password=None)
    return isinstance(key, rsa.RSAPrivateKey)


def forge(header: dict[str, Any], body: dict[str, Any], sign_input: Any = None) -> str:
    """Builds a compact JWS by hand, for headers PyJWT refuses to produce."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    signature = sign_input(signing_input.encode()) if sign_input else b""
    return f"{signing_input}.{b64(signature)}"


def rejected(verifier: TokenVerifier, token: str, now: float = NOW) -> str:
    with pytest.raises(TokenRejected) as info:
        verifier.verify(token, now)
    assert str(info.value) == info.value.reason
    return info.value.reason


@pytest.mark.parametrize("which", ["es", "rs"])
def test_service_account_tokens_are_accepted(
    which: str, request: pytest.FixtureRequest, verifier: TokenVerifier
) -> None:
    account, _ = request.getfixturevalue(which)
    token = account.sign_token(NOW)
    assert verifier.verify(token, NOW + 10) == VerifiedToken(
        "acme", account.private_key_id, NOW + 3600
    )


def test_expiry_has_no_leeway(es: tuple[ServiceAccount, str], verifier: TokenVerifier) -> None:
    """The session refuses calls from ``exp`` on, so Authenticate must refuse the token from then too."""
    token = sign(es[0], claims(iat=int(NOW) - 600, exp=int(NOW)))
    assert verifier.verify(token, NOW - 0.001).expires_at == NOW
    assert "expired" in rejected(verifier, token, NOW)
    assert "expired" in rejected(verifier, token, NOW + 1)


def test_signature_from_another_key_with_the_same_kid_is_rejected(verifier: TokenVerifier) -> None:
    impostor, _ = create_service_account("acme", "es-1", "ES256")
    assert rejected(verifier, impostor.sign_token(NOW)) == "bad signature"


def test_tampered_claims_are_rejected(
    es: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    header, _, signature = sign(es[0], claims()).split(".")
    body = base64.urlsafe_b64encode(json.dumps(claims(exp=int(NOW) + 3000)).encode()).rstrip(b"=")
    assert rejected(verifier, f"{header}.{body.decode()}.{signature}") == "bad signature"


def test_unknown_kid_is_rejected(verifier: TokenVerifier) -> None:
    stranger, _ = create_service_account("acme", "es-2")
    assert "unknown key" in rejected(verifier, stranger.sign_token(NOW))


@pytest.mark.parametrize(
    ("kid", "issuer"),
    [("es-1", "globex"), ("gx-1", "acme")],
    ids=["acme-key-claims-globex", "globex-key-claims-acme"],
)
def test_iss_must_name_the_tenant_that_owns_the_key(
    kid: str, issuer: str, request: pytest.FixtureRequest, verifier: TokenVerifier
) -> None:
    account = request.getfixturevalue("es" if kid == "es-1" else "globex")[0]
    token = sign(account, claims(iss=issuer, sub=issuer), kid=kid)
    assert "unknown key" in rejected(verifier, token)


def test_missing_kid_is_rejected(es: tuple[ServiceAccount, str], verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), es[0].private_key_pem, algorithm="ES256")
    assert rejected(verifier, token) == "missing kid"


def test_alg_none_is_rejected(verifier: TokenVerifier) -> None:
    token = forge({"alg": "none", "kid": "es-1", "typ": "JWT"}, claims())
    assert "not allowed" in rejected(verifier, token)


@pytest.mark.parametrize("which", ["es", "rs"])
def test_hs256_keyed_with_the_public_key_pem_is_rejected(
    which: str, request: pytest.FixtureRequest, verifier: TokenVerifier
) -> None:
    account, public_pem = request.getfixturevalue(which)
    token = forge(
        {"alg": "HS256", "kid": account.private_key_id},
        claims(),
        lambda data: hmac.new(public_pem.encode(), data, hashlib.sha256).digest(),
    )
    assert "not allowed" in rejected(verifier, token)


def test_rs256_header_on_an_ec_key_is_rejected(
    rs: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    token = sign(rs[0], claims(), kid="es-1")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert "does not match the key" in rejected(verifier, token)


def test_iss_and_sub_must_agree(es: tuple[ServiceAccount, str], verifier: TokenVerifier) -> None:
    assert rejected(verifier, sign(es[0], claims(sub="globex"))) == "iss and sub differ"
    assert rejected(verifier, sign(es[0], claims(sub=None))) == "iss and sub differ"


def test_missing_iss_is_rejected(es: tuple[ServiceAccount, str], verifier: TokenVerifier) -> None:
    assert rejected(verifier, sign(es[0], claims(iss=None))) == "missing iss"


def test_lifetime_over_an_hour_is_rejected(
    es: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    assert verifier.verify(sign(es[0], claims(exp=int(NOW) + 3600)), NOW).expires_at == NOW + 3600
    assert "lifetime" in rejected(verifier, sign(es[0], claims(exp=int(NOW) + 3601)))


def test_max_lifetime_is_configurable(keyring: KeyRing, es: tuple[ServiceAccount, str]) -> None:
    token = es[0].sign_token(NOW, lifetime_s=600)
    assert "lifetime" in rejected(TokenVerifier(keyring, max_lifetime_s=599), token)


def test_exp_must_follow_iat(es: tuple[ServiceAccount, str], verifier: TokenVerifier) -> None:
    assert "not after iat" in rejected(
        verifier, sign(es[0], claims(iat=int(NOW) + 10, exp=int(NOW) + 10))
    )


def test_iat_in_the_future_beyond_leeway_is_rejected(
    es: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    assert verifier.verify(sign(es[0], claims(iat=int(NOW) + 30)), NOW).tenant_id == "acme"
    assert "future" in rejected(verifier, sign(es[0], claims(iat=int(NOW) + 31)))


def test_nbf_in_the_future_is_rejected(
    es: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    assert "not yet valid" in rejected(verifier, sign(es[0], claims(nbf=int(NOW) + 60)))


@pytest.mark.parametrize("name", ["exp", "iat"])
@pytest.mark.parametrize("value", [None, "1750000600", True, float("nan"), float("inf"), 10**400])
def test_exp_and_iat_must_be_finite_numbers(
    name: str, value: Any, es: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    assert name in rejected(verifier, sign(es[0], claims(**{name: value})))


def test_audience_is_ignored_unless_configured(
    es: tuple[ServiceAccount, str], verifier: TokenVerifier
) -> None:
    assert verifier.verify(es[0].sign_token(NOW, audience="anything"), NOW).tenant_id == "acme"


@pytest.mark.parametrize(
    ("aud", "accepted"),
    [
        ("trunkline", True),
        (["other", "trunkline"], True),
        ("other", False),
        (None, False),
        (["other"], False),
    ],
)
def test_audience_is_checked_when_configured(
    aud: Any, accepted: bool, keyring: KeyRing, es: tuple[ServiceAccount, str]
) -> None:
    verifier = TokenVerifier(keyring, audience="trunkline")
    token = sign(es[0], claims(aud=aud))
    if accepted:
        assert verifier.verify(token, NOW).tenant_id == "acme"
    else:
        assert rejected(verifier, token) == "audience mismatch"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "e30.e30.e30.e30"])
def test_garbage_is_rejected(token: str, verifier: TokenVerifier) -> None:
    assert "malformed" in rejected(verifier, token)


@pytest.mark.parametrize("payload", [b"not json", b'["acme"]', b"\xff"])
def test_claims_that_are_not_a_json_object_are_rejected(
    payload: bytes, verifier: TokenVerifier
) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"es-1"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    assert rejected(verifier, f"{header}.{body}.c2ln") == "malformed claims"


def _pem(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        (_pem(ec.generate_private_key(ec.SECP384R1()).public_key()), "use P-256"),
        (_pem(rsa.generate_private_key(65537, 1024).public_key()), "at least 2048"),
        (_pem(ed25519.Ed25519PrivateKey.generate().public_key()), "not supported"),
    ],
    ids=["garbage", "p384", "rsa1024", "ed25519"],
)
def test_keyring_refuses_keys_that_rs256_or_es256_cannot_use(pem: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        KeyRing({"acme": {"k1": pem}})
    assert "'acme'" in str(info.value) and "'k1'" in str(info.value)


def test_tenant_key_algorithm_follows_the_key_type(
    es: tuple[ServiceAccount, str], rs: tuple[ServiceAccount, str]
) -> None:
    assert TenantKey.from_pem("a", es[1]).algorithm == "ES256"
    assert TenantKey.from_pem("b", rs[1].encode()).algorithm == "RS256"
