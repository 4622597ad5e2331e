"""The client's credential: a tenant id, a key id and the private key that signs its tokens.

The file format is the one TeleQuick clients already use (PROTOCOL.md §5), so a service account made
by ``trunkline keys create`` works with the public SDKs and vice versa.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trunkline.auth.keys import Algorithm, PrivateKey, load_private_key
from trunkline.auth.tokens import MAX_TOKEN_LIFETIME_S

_FIELDS = ("tenant_id", "private_key_id", "private_key")


@dataclass(frozen=True)
class ServiceAccount:
    tenant_id: str
    private_key_id: str
    private_key_pem: str = field(repr=False)  # keeps the secret out of logs and tracebacks
    _key: PrivateKey = field(init=False, repr=False, compare=False)
    _algorithm: Algorithm = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parses the key now, so a bad account fails where it is loaded, not at the first call."""
        for name in ("tenant_id", "private_key_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        key, algorithm = load_private_key(self.private_key_pem)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_algorithm", algorithm)

    @classmethod
    def from_json(cls, text: str) -> "ServiceAccount":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        missing = [
            name for name in _FIELDS if not isinstance(data.get(name), str) or not data[name]
        ]
        if missing:
            raise ValueError(f"missing or non-string field(s): {', '.join(missing)}")
        return cls(data["tenant_id"], data["private_key_id"], data["private_key"])

    @classmethod
    def load(cls, path: str | Path) -> "ServiceAccount":
        """Every failure is a ValueError naming the file, since that is what the user must fix."""
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"service account file {path}: {exc}") from exc

    def to_json(self) -> str:
        data = {
            "tenant_id": self.tenant_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
        }
        return json.dumps(data, indent=2) + "\n"

    def sign_token(
        self, now: float, lifetime_s: int = MAX_TOKEN_LIFETIME_S, audience: str | None = None
    ) -> str:
        """Refuses lifetimes the gateway would refuse anyway, so the mistake shows up here."""
        if not 0 < lifetime_s <= MAX_TOKEN_LIFETIME_S:
            raise ValueError(f"lifetime_s must be in 1..{MAX_TOKEN_LIFETIME_S}")
        iat = int(now)
        claims: dict[str, object] = {
            "iss": self.tenant_id,
            "sub": self.tenant_id,
            "iat": iat,
            "exp": iat + lifetime_s,
        }
        if audience is not None:
            claims["aud"] = audience
        headers = {"kid": self.private_key_id}
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)


def create_service_account(
    tenant_id: str, kid: str, algorithm: Algorithm = "ES256"
) -> tuple[ServiceAccount, str]:
    """Returns the account (it holds the private key) and the public-key PEM for the gateway's
    key ring."""
    key: PrivateKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"algorithm must be ES256 or RS256, not {algorithm!r}")
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return ServiceAccount(tenant_id, kid, private_pem), public_pem
