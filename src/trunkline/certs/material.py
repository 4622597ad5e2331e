"""A certificate/key pair on disk, checked to belong together, described by what operators need."""

import ipaddress
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

CLOCK_SKEW = timedelta(minutes=5)
"""How far notBefore is backdated, so a client whose clock runs a little slow still accepts it."""


@dataclass(frozen=True)
class CertificateMaterial:
    cert_path: Path
    key_path: Path
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: bytes
    """Of the leaf certificate's DER, as WebTransport ``serverCertificateHashes`` expects."""
    hostnames: tuple[str, ...]
    """The subjectAltName DNS names and IP addresses, IPs in canonical text form."""
    self_signed: bool
    local_ca: Path | None = None
    """The data directory's CA that issued it: what clients trust instead of this short-lived leaf."""

    @property
    def fingerprint_hex(self) -> str:
        """The ``AB:CD:...`` form that browsers and ``openssl x509 -fingerprint`` show."""
        return self.fingerprint_sha256.hex(":").upper()

    def needs_renewal(self, now: datetime, renew_before: timedelta) -> bool:
        return now >= self.not_after - renew_before


def load_certificate(cert_path: Path, key_path: Path) -> CertificateMaterial:
    """Reads a PEM certificate (the leaf first, any chain after it) and its PEM private key.

    Raises ValueError naming the file at fault, because a gateway that starts with the wrong key
    only fails later, at every client's handshake, with nothing in its own log.
    """
    leaf, _ = read_pair(cert_path, key_path)
    return CertificateMaterial(
        cert_path=cert_path,
        key_path=key_path,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()),
        hostnames=_hostnames(leaf),
        self_signed=issued_by(leaf, leaf),
    )


def read_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, PrivateKeyTypes]:
    """The leaf certificate and its private key, checked to belong together (see load_certificate)."""
    cert_pem = _read(cert_path, "certificate")
    key_pem = _read(key_path, "private key")
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError as exc:
        raise ValueError(f"TLS certificate {cert_path} is not a PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:  # cryptography's signal for "encrypted, and no password given"
        raise ValueError(
            f"TLS private key {key_path} is encrypted; give an unencrypted key"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"TLS private key {key_path} is not a PEM private key") from exc
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise ValueError(f"TLS private key {key_path} does not match certificate {cert_path}")
    return leaf, key


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``cert``; ``issued_by(cert, cert)`` means self-signed."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def canonical_hostname(name: str) -> str:
    """So that ``::1`` and ``0:0::1``, or ``LocalHost`` and ``localhost``, compare equal."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"TLS {what} {path} cannot be read: {exc.strerror or exc}") from exc


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hostnames(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    return tuple(canonical_hostname(name) for name in dns) + tuple(str(ip) for ip in ips)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Readers see the old file or the new one, never half of one; a key is never briefly 0644."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
