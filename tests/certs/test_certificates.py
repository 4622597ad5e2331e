"""Certificate material: the self-signed lifecycle of PROTOCOL.md §1, and configured files."""

import hashlib
import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trunkline.certs import LOCAL_NAMES, MAX_VALIDITY, CertificateMaterial, ensure_certificate, load_certificate

NOW = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_creates_a_p256_self_signed_certificate_with_a_private_key_file(tmp_path: Path) -> None:
    material = ensure_certificate(tmp_path, NOW)

    assert material.cert_path == tmp_path / "tls" / "cert.pem"
    assert material.key_path == tmp_path / "tls" / "key.pem"
    assert stat.S_IMODE(material.key_path.stat().st_mode) == 0o600
    cert = _cert(material.cert_path)
    public_key = cert.public_key()
    assert (
        isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1"
    )
    assert cert.issuer == cert.subject
    assert material.self_signed
    assert sorted(p.name for p in material.cert_path.parent.iterdir()) == ["cert.pem", "key.pem"]


def test_validity_is_at_most_14_days_and_starts_before_now(tmp_path: Path) -> None:
    material = ensure_certificate(tmp_path, NOW)
    cert = _cert(material.cert_path)

    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=14)
    assert cert.not_valid_before_utc <= NOW - timedelta(minutes=1)
    assert NOW + timedelta(days=13) < material.not_after
    assert (material.not_before, material.not_after) == (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )


@pytest.mark.parametrize(
    ("validity", "renew_before"),
    [
        (MAX_VALIDITY + timedelta(seconds=1), timedelta(days=3)),
        (timedelta(days=3), timedelta(days=3)),
    ],
    ids=["over-14-days", "renewal-window-covers-validity"],
)
def test_impossible_lifetimes_are_refused(
    validity: timedelta, renew_before: timedelta, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="validity"):
        ensure_certificate(tmp_path, NOW, validity=validity, renew_before=renew_before)


def test_naive_now_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone"):
        ensure_certificate(tmp_path, NOW.replace(tzinfo=None))


def test_subject_alt_names_cover_dns_names_and_ip_addresses(tmp_path: Path) -> None:
    material = ensure_certificate(
        tmp_path, NOW, hostnames=("gw.example.test", "localhost", "127.0.0.1", "::1")
    )
    san = (
        _cert(material.cert_path)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )

    assert san.get_values_for_type(x509.DNSName) == ["gw.example.test", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert material.hostnames == ("gw.example.test", "localhost", "127.0.0.1", "::1")


def test_reuses_a_good_certificate_without_rewriting_it(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, NOW)
    written = first.cert_path.stat().st_mtime_ns, first.key_path.stat().st_mtime_ns

    again = ensure_certificate(
        tmp_path, NOW + timedelta(days=10), hostnames=("0:0::1", "LOCALHOST", *reversed(LOCAL_NAMES))
    )

    assert again == first
    assert (again.cert_path.stat().st_mtime_ns, again.key_path.stat().st_mtime_ns) == written


def test_renews_within_renew_before_of_expiry(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, NOW)
    boundary = first.not_after - timedelta(days=3)

    assert ensure_certificate(tmp_path, boundary - timedelta(seconds=1)) == first
    renewed = ensure_certificate(tmp_path, boundary)

    assert renewed.fingerprint_sha256 != first.fingerprint_sha256
    assert renewed.not_after > first.not_after
    assert not renewed.needs_renewal(boundary, timedelta(days=3))


@pytest.mark.parametrize(
    "damage",
    [
        "missing-key",
        "mismatched-key",
        "garbage-cert",
        "other-hostnames",
        "clock-went-back",
        "shorter-validity",
    ],
)
def test_replaces_files_it_cannot_reuse(damage: str, tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, NOW)
    now, validity = NOW, MAX_VALIDITY
    hostnames: tuple[str, ...] = LOCAL_NAMES
    if damage == "missing-key":
        first.key_path.unlink()
    elif damage == "mismatched-key":
        first.key_path.write_bytes(
            ensure_certificate(tmp_path / "other", NOW).key_path.read_bytes()
        )
    elif damage == "garbage-cert":
        first.cert_path.write_text("not a certificate")
    elif damage == "other-hostnames":
        hostnames = ("localhost", "gw.example.test")
    elif damage == "clock-went-back":
        now = first.not_before - timedelta(hours=1)
    else:
        validity = timedelta(days=7)

    replaced = ensure_certificate(tmp_path, now, hostnames=hostnames, validity=validity)

    assert replaced.fingerprint_sha256 != first.fingerprint_sha256
    assert load_certificate(replaced.cert_path, replaced.key_path) == replaced


def test_fingerprint_is_sha256_of_the_der_certificate(tmp_path: Path) -> None:
    material = ensure_certificate(tmp_path, NOW)
    der = _cert(material.cert_path).public_bytes(serialization.Encoding.DER)

    assert material.fingerprint_sha256 == hashlib.sha256(der).digest()
    assert material.fingerprint_hex == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert len(material.fingerprint_hex) == 32 * 3 - 1


def test_needs_renewal_is_inclusive_at_the_boundary(tmp_path: Path) -> None:
    material = ensure_certificate(tmp_path, NOW)
    window = timedelta(days=2)
    assert not material.needs_renewal(
        material.not_after - window - timedelta(microseconds=1), window
    )
    assert material.needs_renewal(material.not_after - window, window)


def test_material_loads_into_aioquic(tmp_path: Path) -> None:
    material = ensure_certificate(tmp_path, NOW)
    configuration = QuicConfiguration(is_client=False)
    configuration.load_cert_chain(material.cert_path, material.key_path)
    assert configuration.certificate is not None
    assert configuration.certificate.fingerprint(hashes.SHA256()) == material.fingerprint_sha256


def test_load_rejects_a_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    one = ensure_certificate(tmp_path / "one", NOW)
    two = ensure_certificate(tmp_path / "two", NOW)
    with pytest.raises(ValueError, match="does not match") as info:
        load_certificate(one.cert_path, two.key_path)
    assert str(two.key_path) in str(info.value) and str(one.cert_path) in str(info.value)


def test_load_names_missing_and_unparsable_files(tmp_path: Path) -> None:
    good = ensure_certificate(tmp_path, NOW)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

    with pytest.raises(ValueError, match=f"certificate {tmp_path / 'nope.pem'} cannot be read"):
        load_certificate(tmp_path / "nope.pem", good.key_path)
    with pytest.raises(ValueError, match=f"key {tmp_path / 'nope.pem'} cannot be read"):
        load_certificate(good.cert_path, tmp_path / "nope.pem")
    with pytest.raises(ValueError, match=f"{junk} is not a PEM certificate"):
        load_certificate(junk, good.key_path)
    with pytest.raises(ValueError, match=f"{good.cert_path} is not a PEM private key"):
        load_certificate(good.cert_path, good.cert_path)


def test_load_rejects_an_encrypted_key(tmp_path: Path) -> None:
    good = ensure_certificate(tmp_path, NOW)
    key = serialization.load_pem_private_key(good.key_path.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ValueError, match="encrypted"):
        load_certificate(good.cert_path, encrypted)


def _ca_issued_chain(tmp_path: Path) -> tuple[Path, Path, x509.Certificate]:
    """A CA-signed leaf with the CA appended, as configured production material usually is."""
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw.example.test")])

    def build(subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=90))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("gw.example.test")]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )

    ca, leaf = build(ca_name, ca_key.public_key()), build(leaf_name, leaf_key.public_key())
    cert_path, key_path = tmp_path / "chain.pem", tmp_path / "leaf.key"
    cert_path.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, leaf


def test_load_configured_chain_describes_the_leaf(tmp_path: Path) -> None:
    cert_path, key_path, leaf = _ca_issued_chain(tmp_path)

    material = load_certificate(cert_path, key_path)

    assert material == CertificateMaterial(
        cert_path=cert_path,
        key_path=key_path,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).digest(),
        hostnames=("gw.example.test",),
        self_signed=False,
    )


def test_load_accepts_a_certificate_without_subject_alt_names(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    material = load_certificate(cert_path, key_path)

    assert material.hostnames == ()
    assert material.self_signed
