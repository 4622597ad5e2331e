"""The local-development certificate: made when missing, reused while good, replaced before expiry.

Browsers pin a certificate through ``serverCertificateHashes`` only if its whole validity, notBefore
to notAfter, is at most 14 days, and ECDSA P-256 is the key type they all accept. So the certificate
is short-lived by design, and this module's job is to keep one fresh without the operator noticing.
It is self-signed, or issued by the data directory's CA once there is one (``ca``).
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trunkline.certs.ca import LocalCa, load_ca
from trunkline.certs.material import (
    CLOCK_SKEW,
    CertificateMaterial,
    canonical_hostname,
    issued_by,
    load_certificate,
    write_atomically,
)

MAX_VALIDITY = timedelta(days=14)
"""The WebTransport ``serverCertificateHashes`` ceiling on notAfter - notBefore."""

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1", "dev.0.telequick.dev", "dev.0.clutchcall.dev", "h3")
"""Loopback, and the server names the public SDKs hard-code (the TeleQuick and ClutchCall Python SDKs
verify ``dev.0.*.dev``, the Rust SDK says ``h3``), so that they work on the first try against a local
gateway whose CA they trust. The names vouch for nothing to anyone else: only a client that trusts
this gateway's own certificate or CA accepts them."""


def ensure_certificate(
    data_dir: Path,
    now: datetime,
    hostnames: Sequence[str] = LOCAL_NAMES,
    validity: timedelta = MAX_VALIDITY,
    renew_before: timedelta = timedelta(days=3),
    ca: LocalCa | None = None,
) -> CertificateMaterial:
    """Returns ``data_dir/tls/{cert,key}.pem``, first replacing them if they are missing, broken,
    mismatched, not yet valid, within ``renew_before`` of expiry, valid for longer than
    ``validity``, for other hostnames, or not issued by ``ca`` (self-signed when ``ca`` is None).

    Anything wrong with the old files means "make new ones", never an error: they are this
    function's own cache, and the operator who wants control configures material instead.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    names = tuple(dict.fromkeys(canonical_hostname(name) for name in hostnames))
    if not names:
        raise ValueError("at least one hostname is required")
    if not renew_before < validity <= MAX_VALIDITY:
        raise ValueError(f"need renew_before < validity <= {MAX_VALIDITY.days} days")
    if ca is not None and ca.certificate.not_valid_after_utc < now + validity:
        raise ValueError(f"local CA {ca.cert_path} expires {ca.certificate.not_valid_after_utc:%Y-%m-%d}; "
                         "remove it and its key, then run `trunkline cert --ca` and trust the new one")
    cert_path, key_path = _paths(data_dir)
    try:
        existing = load_certificate(cert_path, key_path)
    except ValueError:
        existing = None
    if (
        existing is not None
        and existing.not_before <= now
        and existing.not_after - existing.not_before <= validity
        and not existing.needs_renewal(now, renew_before)
        and set(existing.hostnames) == set(names)
        and _issued_by(cert_path, ca)
    ):
        return replace(existing, local_ca=None if ca is None else ca.cert_path)
    cert_pem, key_pem = _certificate_pem(names, now - CLOCK_SKEW, validity, ca)
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Key first: a crash between the writes leaves a mismatched pair, which the next run replaces.
    write_atomically(key_path, key_pem, mode=0o600)
    write_atomically(cert_path, cert_pem, mode=0o644)
    return replace(load_certificate(cert_path, key_path), local_ca=None if ca is None else ca.cert_path)


def load_local_certificate(data_dir: Path) -> CertificateMaterial | None:
    """The local certificate as it is on disk, making nothing: None when none was ever made there.

    Raises ValueError naming the file when it is there but broken (the gateway replaces it at start).
    """
    cert_path, key_path = _paths(data_dir)
    if not cert_path.exists():
        return None
    material = load_certificate(cert_path, key_path)
    ca = load_ca(data_dir)
    if ca is not None and _issued_by(cert_path, ca):
        return replace(material, local_ca=ca.cert_path)
    return material


def _paths(data_dir: Path) -> tuple[Path, Path]:
    tls_dir = data_dir / "tls"
    return tls_dir / "cert.pem", tls_dir / "key.pem"


def _issued_by(cert_path: Path, ca: LocalCa | None) -> bool:
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return issued_by(leaf, leaf if ca is None else ca.certificate)


def _certificate_pem(
    hostnames: Sequence[str], not_before: datetime, validity: timedelta, ca: LocalCa | None
) -> tuple[bytes, bytes]:
    """The leaf, followed by the CA when there is one, so that trusting this file alone also works;
    and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if ca is None else ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    chain = b""
    if ca is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        chain = ca.certificate.public_bytes(serialization.Encoding.PEM)
    cert = builder.sign(key if ca is None else ca.key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM) + chain, key_pem


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)
