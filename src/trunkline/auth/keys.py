"""Which JWS algorithm a key may sign or verify with.

The algorithm is a property of the key, never of the token header. Deriving it here, and refusing
every key that is not RSA (2048 bits or more) or EC P-256 when it is loaded, is what makes
``alg=none``, HMAC keyed with a public-key PEM, and RS256/ES256 confusion impossible by construction
rather than three separate checks someone could forget.
"""

from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

Algorithm = Literal["RS256", "ES256"]
PublicKey = RSAPublicKey | EllipticCurvePublicKey
PrivateKey = RSAPrivateKey | EllipticCurvePrivateKey

MIN_RSA_BITS = 2048


def algorithm_for(key: PublicKey | PrivateKey) -> Algorithm:
    """Raises ValueError for RSA under 2048 bits or an EC curve other than P-256 (ES256 means
    P-256)."""
    if isinstance(key, (RSAPublicKey, RSAPrivateKey)):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required"
            )
        return "RS256"
    if not isinstance(key.curve, SECP256R1):
        raise ValueError(f"EC key on curve {key.curve.name} is not supported; use P-256")
    return "ES256"


def load_public_key(pem: str | bytes) -> tuple[PublicKey, Algorithm]:
    """Parses a SubjectPublicKeyInfo PEM and refuses anything RS256/ES256 cannot use."""
    try:
        key = serialization.load_pem_public_key(_as_bytes(pem))
    except ValueError as exc:
        raise ValueError("not a PEM public key") from exc
    if not isinstance(key, (RSAPublicKey, EllipticCurvePublicKey)):
        raise ValueError(f"{type(key).__name__} is not supported; use RSA-2048 or EC P-256")
    return key, algorithm_for(key)


def load_private_key(pem: str | bytes) -> tuple[PrivateKey, Algorithm]:
    """Parses an unencrypted private-key PEM; service-account files carry their key in the clear."""
    try:
        key = serialization.load_pem_private_key(_as_bytes(pem), password=None)
    except TypeError as exc:  # cryptography's signal for "encrypted, and no password given"
        raise ValueError("encrypted private keys are not supported") from exc
    except ValueError as exc:
        raise ValueError("not a PEM private key") from exc
    if not isinstance(key, (RSAPrivateKey, EllipticCurvePrivateKey)):
        raise ValueError(f"{type(key).__name__} is not supported; use RSA-2048 or EC P-256")
    return key, algorithm_for(key)


def _as_bytes(pem: str | bytes) -> bytes:
    return pem.encode("utf-8") if isinstance(pem, str) else pem
