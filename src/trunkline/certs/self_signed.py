"""The local-development certificate: made when missing, reused while good, replaced before expiry.

Browsers pin a certificate through ``serverCertificateHashes`` only if its whole validity, notBefore
to notAfter, is at most 14 days, and ECDSA P-256 is the key type they all accept. So the certificate
is short-lived by design, and this module's job is to keep one fresh without the operator noticing.
"""

import ipaddress
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trunkline.certs.material import CertificateMaterial, canonical_hostname, load_certificate

MAX_VALIDITY = timedelta(days=14)
"""The WebTransport ``serverCertificateHashes`` ceiling on notAfter - notBefore."""

CLOCK_SKEW = timedelta(minutes=5)
"""How far notBefore is backdated, so a client whose clock runs a little slow still accepts it."""


def ensure_certificate(
    data_dir: Path,
    now: datetime,
    hostnames: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    validity: timedelta = MAX_VALIDITY,
    renew_before: timedelta = timedelta(days=3),
) -> CertificateMaterial:
    """Returns ``data_dir/tls/{cert,key}.pem``, first replacing them if they are missing, broken,
    mismatched, not yet valid, within ``renew_before`` of expiry, valid for longer than
    ``validity``, or for other hostnames.

    Anything wrong with the old files means "make new ones", never an error: they are this
    function's own cache, and the operator who wants control configures material instead.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not hostnames:
        raise ValueError("at least one hostname is required")
    if not renew_before < validity <= MAX_VALIDITY:
        raise ValueError(f"need renew_before < validity <= {MAX_VALIDITY.days} days")
    tls_dir = data_dir / "tls"
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    try:
        existing = load_certificate(cert_path, key_path)
    except ValueError:
        existing = None
    wanted = {canonical_hostname(name) for name in hostnames}
    if (
        existing is not None
        and existing.not_before <= now
        and existing.not_after - existing.not_before <= validity
        and not existing.needs_renewal(now, renew_before)
        and set(existing.hostnames) == wanted
    ):
        return existing
    cert_pem, key_pem = _self_signed_pem(hostnames, now - CLOCK_SKEW, validity)
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Key first: a crash between the writes leaves a mismatched pair, which the next run replaces.
    _write_atomically(key_path, key_pem, mode=0o600)
    _write_atomically(cert_path, cert_pem, mode=0o644)
    return load_certificate(cert_path, key_path)


def _self_signed_pem(
    hostnames: Sequence[str], not_before: datetime, validity: timedelta
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Readers see the old file or the new one, never half of one; the key is never briefly 0644."""
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
