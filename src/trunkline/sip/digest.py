"""HTTP Digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

The client half answers trunk challenges; the server half issues and checks challenges for inbound
authentication. Nonces issued by the server are self-validating (timestamp plus HMAC), so a
verifier needs no storage beyond a small replay window for nonce counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from .message import SipParseError, SipResponse

__all__ = [
    "ALGORITHMS",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestVerifier",
    "VerifyResult",
    "compute_response",
    "parse_auth_header",
]

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
ALGORITHMS = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
"""Supported algorithms, most preferred first (RFC 8760 asks clients to prefer SHA-256)."""


def _hash_for(algorithm: str) -> Callable[[bytes], str]:
    base = algorithm.upper().removesuffix("-SESS")
    fn = _HASHES.get(base)
    if fn is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return fn


def _canonical_algorithm(algorithm: str) -> str:
    for known in ALGORITHMS:
        if known.lower() == algorithm.lower():
            return known
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Scheme name=value, name="quoted"`` into the scheme and lower-cased parameters."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if not scheme:
        raise SipParseError("empty authentication header")
    params: dict[str, str] = {}
    i = 0
    n = len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq < 0:
            raise SipParseError("authentication parameter without value")
        name = rest[i:eq].strip().lower()
        if not name or " " in name:
            raise SipParseError("bad authentication parameter name")
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            out: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(rest[i])
                i += 1
            if i >= n:
                raise SipParseError("unterminated quoted authentication parameter")
            i += 1
            params[name] = "".join(out)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
    return scheme, params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One Digest challenge from WWW-Authenticate (401) or Proxy-Authenticate (407)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False

    @classmethod
    def parse(cls, value: str, *, proxy: bool = False) -> DigestChallenge:
        scheme, params = parse_auth_header(value)
        if scheme.lower() != "digest":
            raise SipParseError(f"not a Digest challenge: {scheme[:20]!r}")
        if "realm" not in params or "nonce" not in params:
            raise SipParseError("Digest challenge lacks realm or nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5"),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
            proxy=proxy,
        )

    @property
    def supported(self) -> bool:
        """Whether this client can answer: known algorithm and, if qop is offered, a known one."""
        try:
            _canonical_algorithm(self.algorithm)
        except ValueError:
            return False
        return not self.qop or "auth" in self.qop or "auth-int" in self.qop

    def to_header(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of an Authorization / Proxy-Authorization header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, value: str) -> DigestCredentials:
        scheme, p = parse_auth_header(value)
        if scheme.lower() != "digest":
            raise SipParseError(f"not Digest credentials: {scheme[:20]!r}")
        try:
            return cls(
                username=p["username"], realm=p["realm"], nonce=p["nonce"], uri=p["uri"],
                response=p["response"], algorithm=p.get("algorithm", "MD5"), qop=p.get("qop"),
                nc=p.get("nc"), cnonce=p.get("cnonce"), opaque=p.get("opaque"),
            )
        except KeyError as exc:
            raise SipParseError(f"Digest credentials lack {exc.args[0]}") from None

    def to_header(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f"cnonce={_quote(self.cnonce or '')}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def compute_response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (RFC 2069 form when ``qop`` is None)."""
    h = _hash_for(algorithm)
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce or ''}".encode())
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{h(body)}".encode())
    else:
        ha2 = h(f"{method}:{uri}".encode())
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}".encode())
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


class DigestClient:
    """Answers Digest challenges with one set of credentials, counting nonce uses.

    The nonce count must grow with every request reusing a nonce (RFC 7616 §3.4), so the client
    keeps the current nonce and its count per realm; a new nonce for the realm restarts at 1.
    """

    def __init__(
        self, username: str, password: str, *,
        cnonce_factory: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.username = username
        self.password = password
        self._cnonce_factory = cnonce_factory
        self._nc: dict[str, tuple[str, int]] = {}

    def authorize(
        self, challenge: DigestChallenge, method: str, uri: str, body: bytes = b""
    ) -> DigestCredentials:
        algorithm = _canonical_algorithm(challenge.algorithm)
        qop: str | None = None
        nc: str | None = None
        cnonce: str | None = None
        if challenge.qop:
            if "auth" in challenge.qop:
                qop = "auth"
            elif "auth-int" in challenge.qop:
                qop = "auth-int"
            else:
                raise ValueError(f"no supported qop in {challenge.qop!r}")
        if qop is not None or algorithm.endswith("-sess"):
            cnonce = self._cnonce_factory()
        if qop is not None:
            nonce, used = self._nc.get(challenge.realm, (challenge.nonce, 0))
            count = used + 1 if nonce == challenge.nonce else 1
            self._nc[challenge.realm] = (challenge.nonce, count)
            nc = f"{count:08x}"
        response = compute_response(
            algorithm=algorithm, username=self.username, password=self.password,
            realm=challenge.realm, nonce=challenge.nonce, method=method, uri=uri, qop=qop,
            nc=nc, cnonce=cnonce, body=body,
        )
        return DigestCredentials(
            username=self.username, realm=challenge.realm, nonce=challenge.nonce, uri=uri,
            response=response, algorithm=algorithm, qop=qop, nc=nc, cnonce=cnonce,
            opaque=challenge.opaque,
        )

    def answer(
        self,
        response: SipResponse,
        method: str,
        uri: str,
        body: bytes = b"",
        previous: Iterable[tuple[str, str]] = (),
    ) -> list[tuple[str, str]] | None:
        """Headers to add to the retried request, or None when retrying is pointless.

        ``previous`` are the headers of the challenged request. If it already carried credentials
        for a realm and the new challenge is not ``stale``, the password is wrong and retrying
        would loop, so None is returned (RFC 2617 §3.2.1 / RFC 3261 §22.3). Several challenges for
        one realm (RFC 8760) are answered with the strongest supported algorithm.
        """
        if response.status not in (401, 407):
            return None
        proxy = response.status == 407
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        out_name = "Proxy-Authorization" if proxy else "Authorization"
        tried_realms: set[str] = set()
        for name, value in previous:
            if name.lower() == out_name.lower():
                try:
                    tried_realms.add(DigestCredentials.parse(value).realm)
                except SipParseError:
                    continue
        best: dict[str, DigestChallenge] = {}
        for value in response.headers.get_all(header):
            try:
                challenge = DigestChallenge.parse(value, proxy=proxy)
            except SipParseError:
                continue
            if not challenge.supported:
                continue
            current = best.get(challenge.realm)
            if current is None or _rank(challenge) < _rank(current):
                best[challenge.realm] = challenge
        if not best:
            return None
        headers: list[tuple[str, str]] = []
        for realm, challenge in best.items():
            if realm in tried_realms and not challenge.stale:
                return None
            headers.append((out_name, self.authorize(challenge, method, uri, body).to_header()))
        return headers


def _rank(challenge: DigestChallenge) -> int:
    return ALGORITHMS.index(_canonical_algorithm(challenge.algorithm))


class VerifyResult(Enum):
    OK = "ok"
    STALE = "stale"
    """Valid credentials on an expired nonce: re-challenge with ``stale=True``."""
    FAILED = "failed"


@dataclass
class DigestVerifier:
    """Server side: issue challenges and check credentials against a known password.

    Nonces carry their issue time and an HMAC under ``secret``, so any verifier sharing the
    secret accepts them without shared state; only nonce counts are remembered, to refuse
    replays, and only for as long as the nonce lives.
    """

    realm: str
    secret: bytes
    nonce_ttl: float = 300.0
    algorithm: str = "SHA-256"
    qop: tuple[str, ...] = ("auth",)
    _seen: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)

    def make_nonce(self, now: float) -> str:
        issued = struct.pack(">d", now) + secrets.token_bytes(8)
        mac = hmac.new(self.secret, issued + self.realm.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(issued + mac).decode().rstrip("=")

    def _nonce_time(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return None
        if len(raw) != 32:
            return None
        issued, mac = raw[:16], raw[16:]
        expected = hmac.new(self.secret, issued + self.realm.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected[:16]):
            return None
        value: float = struct.unpack(">d", issued[:8])[0]
        return value

    def challenge(self, now: float, *, stale: bool = False, algorithm: str | None = None) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value carrying a fresh nonce."""
        return DigestChallenge(
            realm=self.realm, nonce=self.make_nonce(now), algorithm=algorithm or self.algorithm,
            qop=self.qop, stale=stale,
        ).to_header()

    def verify(
        self,
        credentials: DigestCredentials,
        *,
        method: str,
        password: str,
        now: float,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> VerifyResult:
        self._prune(now)
        if credentials.realm != self.realm:
            return VerifyResult.FAILED
        if request_uri is not None and credentials.uri != request_uri:
            return VerifyResult.FAILED
        issued = self._nonce_time(credentials.nonce)
        if issued is None or issued > now:
            return VerifyResult.FAILED
        try:
            algorithm = _canonical_algorithm(credentials.algorithm)
        except ValueError:
            return VerifyResult.FAILED
        if self.qop and credentials.qop not in self.qop:
            return VerifyResult.FAILED
        count = 0
        if credentials.qop is not None:
            nc = credentials.nc or ""
            if len(nc) != 8 or not credentials.cnonce:
                return VerifyResult.FAILED
            try:
                count = int(nc, 16)
            except ValueError:
                return VerifyResult.FAILED
        expected = compute_response(
            algorithm=algorithm, username=credentials.username, password=password,
            realm=self.realm, nonce=credentials.nonce, method=method, uri=credentials.uri,
            qop=credentials.qop, nc=credentials.nc, cnonce=credentials.cnonce, body=body,
        )
        if not hmac.compare_digest(expected, credentials.response.lower()):
            return VerifyResult.FAILED
        if now - issued > self.nonce_ttl:
            return VerifyResult.STALE
        _, last = self._seen.get(credentials.nonce, (issued, 0))
        if credentials.qop is not None and count <= last:
            return VerifyResult.FAILED
        self._seen[credentials.nonce] = (issued, count)
        return VerifyResult.OK

    def _prune(self, now: float) -> None:
        horizon = now - self.nonce_ttl
        if self._seen and min(t for t, _ in self._seen.values()) < horizon:
            self._seen = {k: v for k, v in self._seen.items() if v[0] >= horizon}
