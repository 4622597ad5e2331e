"""Gateway-side verification of tenant JWTs (PROTOCOL.md §5).

PyJWT is used only for what it is good at -- parsing the compact form and checking a signature
against an algorithm allow-list of one. Every claim rule is checked here, against the ``now`` the
caller passes in, so the policy is readable in one place and tests need no clock patching.
"""

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from trunkline.auth.keys import Algorithm, PublicKey, load_public_key

MAX_TOKEN_LIFETIME_S = 3600
"""The protocol's ceiling on ``exp - iat``: a leaked token is useful for an hour at most."""

# A JWS parser that does not even know HMAC or "none": a second wall behind the per-key allow-list.
_JWS = PyJWS(algorithms=["RS256", "ES256"])


class TokenRejected(Exception):
    """The token does not authenticate anyone; ``reason`` is short enough for an AuthResponse."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TenantKey:
    """One verification key; its algorithm is fixed by its type when it is loaded."""

    kid: str
    public_key: PublicKey
    algorithm: Algorithm

    @classmethod
    def from_pem(cls, kid: str, pem: str | bytes) -> "TenantKey":
        if not kid:
            raise ValueError("key id must not be empty")
        public_key, algorithm = load_public_key(pem)
        return cls(kid, public_key, algorithm)


class KeyRing:
    """Each tenant's public keys by ``kid``; a kid only means something inside its own tenant."""

    def __init__(self, pems: Mapping[str, Mapping[str, str | bytes]]) -> None:
        """Takes plain configuration data, ``{tenant_id: {kid: public_key_pem}}``; a bad key fails
        here, at startup, naming its tenant and kid, rather than at some client's first call."""
        self._keys: dict[str, dict[str, TenantKey]] = {}
        for tenant_id, keys in pems.items():
            if not tenant_id:
                raise ValueError("tenant id must not be empty")
            tenant_keys: dict[str, TenantKey] = {}
            for kid, pem in keys.items():
                try:
                    tenant_keys[kid] = TenantKey.from_pem(kid, pem)
                except ValueError as exc:
                    raise ValueError(f"tenant {tenant_id!r}, key {kid!r}: {exc}") from exc
            self._keys[tenant_id] = tenant_keys

    def find(self, tenant_id: str, kid: str) -> TenantKey | None:
        return self._keys.get(tenant_id, {}).get(kid)


@dataclass(frozen=True)
class VerifiedToken:
    tenant_id: str
    kid: str
    expires_at: float


class TokenVerifier:
    """``leeway_s`` tolerates a signer whose clock runs ahead of ours (``iat``, ``nbf``). It never
    extends ``exp``: expiry is one instant for the whole gateway (§5), so a token the session check
    would refuse is refused here too, not answered SUCCESS and then refused on every call."""

    def __init__(
        self,
        keyring: KeyRing,
        audience: str | None = None,
        leeway_s: int = 30,
        max_lifetime_s: int = MAX_TOKEN_LIFETIME_S,
    ) -> None:
        if leeway_s < 0 or max_lifetime_s <= 0:
            raise ValueError("leeway_s must be >= 0 and max_lifetime_s > 0")
        self._keyring = keyring
        self._audience = audience
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_lifetime_s

    def verify(self, token: str, now: float) -> VerifiedToken:
        """Raises TokenRejected. Before the signature is checked, ``iss`` and ``kid`` only choose a
        key; no other claim is looked at until the tenant is known to have signed them."""
        try:
            unverified = _JWS.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        header = unverified["header"]
        alg = header.get("alg")
        kid = header.get("kid")
        if alg not in ("RS256", "ES256"):
            raise TokenRejected(f"algorithm {str(alg)[:16]!r} is not allowed")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("missing kid")
        issuer = _claims(unverified["payload"]).get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise TokenRejected("missing iss")
        key = self._keyring.find(issuer, kid)
        if key is None:
            raise TokenRejected("unknown key for this issuer")
        if alg != key.algorithm:
            raise TokenRejected(f"algorithm {alg} does not match the key")
        try:
            payload = _JWS.decode(token, key.public_key, algorithms=[key.algorithm])
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad signature") from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        claims = _claims(payload)
        if claims.get("sub") != issuer:
            raise TokenRejected("iss and sub differ")
        expires_at = self._check_times(claims, now)
        self._check_audience(claims)
        return VerifiedToken(tenant_id=issuer, kid=kid, expires_at=expires_at)

    def _check_times(self, claims: dict[str, Any], now: float) -> float:
        exp = _numeric(claims, "exp")
        iat = _numeric(claims, "iat")
        if now >= exp:
            raise TokenRejected("token expired")
        if iat > now + self._leeway_s:
            raise TokenRejected("token issued in the future")
        if exp <= iat:
            raise TokenRejected("exp is not after iat")
        if exp - iat > self._max_lifetime_s:
            raise TokenRejected(f"token lifetime exceeds {self._max_lifetime_s} s")
        if "nbf" in claims and _numeric(claims, "nbf") > now + self._leeway_s:
            raise TokenRejected("token not yet valid")
        return exp

    def _check_audience(self, claims: dict[str, Any]) -> None:
        if self._audience is None:
            return
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self._audience not in audiences:
            raise TokenRejected("audience mismatch")


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except ValueError:
        raise TokenRejected("malformed claims") from None
    if not isinstance(claims, dict):
        raise TokenRejected("malformed claims")
    return claims


def _numeric(claims: dict[str, Any], name: str) -> float:
    """Python's json accepts NaN, Infinity and 400-digit integers; a NaN ``exp`` would slip past
    every comparison and a huge one would raise OverflowError instead of TokenRejected."""
    value = claims.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            number = float(value)
            if math.isfinite(number):
                return number
    raise TokenRejected(f"missing or non-numeric {name}")
