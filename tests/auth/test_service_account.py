"""Service-account files: the round trip, the tokens they sign, and errors that name the problem."""

import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trunkline.auth import KeyRing, ServiceAccount, TokenVerifier, create_service_account

NOW = 1_750_000_000.0


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_json_round_trip_keeps_a_working_account(algorithm: str, tmp_path: Path) -> None:
    account, public_pem = create_service_account("acme", "key-1", algorithm)  # type: ignore[arg-type]
    path = tmp_path / "sa.json"
    path.write_text(account.to_json(), encoding="utf-8")

    loaded = ServiceAccount.load(path)

    assert loaded == account
    assert set(json.loads(path.read_text())) == {"tenant_id", "private_key_id", "private_key"}
    verifier = TokenVerifier(KeyRing({"acme": {"key-1": public_pem}}))
    assert verifier.verify(loaded.sign_token(NOW), NOW).kid == "key-1"


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_sign_token_header_and_claims(algorithm: str) -> None:
    account, public_pem = create_service_account("acme", "key-1", algorithm)  # type: ignore[arg-type]
    token = account.sign_token(NOW + 0.9, lifetime_s=900, audience="trunkline")

    assert jwt.get_unverified_header(token) == {"alg": algorithm, "kid": "key-1", "typ": "JWT"}
    claims = jwt.decode(
        token,
        public_pem,
        algorithms=[algorithm],
        audience="trunkline",
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": "acme",
        "sub": "acme",
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "aud": "trunkline",
    }
    assert "aud" not in jwt.decode(account.sign_token(NOW), options={"verify_signature": False})


@pytest.mark.parametrize("lifetime_s", [0, -1, 3601])
def test_sign_token_refuses_lifetimes_the_gateway_would_refuse(lifetime_s: int) -> None:
    account, _ = create_service_account("acme", "key-1")
    with pytest.raises(ValueError, match="lifetime_s"):
        account.sign_token(NOW, lifetime_s=lifetime_s)


def test_repr_does_not_leak_the_private_key() -> None:
    account, _ = create_service_account("acme", "key-1")
    assert "PRIVATE" not in repr(account)
    assert "key-1" in repr(account)


def test_create_refuses_unknown_algorithms() -> None:
    with pytest.raises(ValueError, match="ES256 or RS256"):
        create_service_account("acme", "key-1", "HS256")  # type: ignore[arg-type]


def _p384_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _encrypted_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()


def _file(**fields: object) -> str:
    base: dict[str, object] = {
        "tenant_id": "acme",
        "private_key_id": "key-1",
        "private_key": _p384_pem(),
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["acme"]', "expected a JSON object"),
        (_file(tenant_id=None), "missing or non-string field\\(s\\): tenant_id"),
        (_file(private_key_id=7, private_key=""), "private_key_id, private_key"),
        (
            _file(private_key="-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"),
            "not a PEM private key",
        ),
        (_file(), "use P-256"),
        (_file(private_key=_encrypted_pem()), "encrypted private keys are not supported"),
    ],
    ids=["not-json", "not-object", "no-tenant", "bad-types", "bad-pem", "p384", "encrypted"],
)
def test_bad_files_raise_value_error_naming_file_and_problem(
    content: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "sa.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        ServiceAccount.load(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sa\.json"):
        ServiceAccount.load(tmp_path / "sa.json")
