"""The local CA: one long-lived key, trusted once, that issues the gateway's short-lived certificates.

A self-signed certificate changes with every renewal, so whoever trusts it must trust it again every
few days, and clients that verify against a CA bundle under a fixed server name (the public TeleQuick
SDKs) cannot use it at all. A private CA in the data directory fixes both. It is made only when asked
(``trunkline cert --ca``) and never replaced behind the user's back: users have put it in their trust
stores, so a broken one is an error to fix, not a reason to mint another.
"""

import platform
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trunkline.certs.material import CLOCK_SKEW, read_pair, write_atomically

CA_VALIDITY = timedelta(days=3650)
"""Long enough that nobody has to trust a second one; the key never leaves the data directory."""


@dataclass(frozen=True)
class LocalCa:
    cert_path: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def ca_paths(data_dir: Path) -> tuple[Path, Path]:
    """``data_dir/tls/ca.pem`` (what clients trust) and ``ca-key.pem`` (mode 0600)."""
    tls_dir = data_dir / "tls"
    return tls_dir / "ca.pem", tls_dir / "ca-key.pem"


def load_ca(data_dir: Path) -> LocalCa | None:
    """The data directory's CA, or None when it has none.

    Raises ValueError naming the file when the CA is there but unusable (key missing, mismatched,
    not a P-256 key). A key without its certificate is a CA creation that never finished, which no
    one can have trusted yet: that counts as no CA.
    """
    cert_path, key_path = ca_paths(data_dir)
    if not cert_path.exists():
        return None
    certificate, key = read_pair(cert_path, key_path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"local CA key {key_path} is not an ECDSA key")
    return LocalCa(cert_path, certificate, key)


def ensure_ca(data_dir: Path, now: datetime) -> LocalCa:
    """The data directory's CA, made first if there is none."""
    existing = load_ca(data_dir)
    if existing is not None:
        return existing
    cert_path, key_path = ca_paths(data_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Trunkline local development"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, platform.node() or "localhost"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Trunkline local CA"),
    ])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Key first: the certificate's presence is what makes it a CA (see load_ca).
    write_atomically(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ), mode=0o600)
    write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return LocalCa(cert_path, certificate, key)
