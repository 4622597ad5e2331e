"""The local CA: made on request, trusted once, issuing the gateway's short-lived certificates."""

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioquic.tls import AlertBadCertificate, verify_certificate
from cryptography import x509

from trunkline.certs import LOCAL_NAMES, MAX_VALIDITY, ensure_ca, ensure_certificate, load_ca, load_local_certificate

NOW = datetime.now(UTC)  # aioquic's verifier checks validity against the real clock


def _chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_makes_a_long_lived_ca_with_a_private_key_once(tmp_path: Path) -> None:
    assert load_ca(tmp_path) is None

    ca = ensure_ca(tmp_path, NOW)

    assert ca.cert_path == tmp_path / "tls" / "ca.pem"
    assert stat.S_IMODE((tmp_path / "tls" / "ca-key.pem").stat().st_mode) == 0o600
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert ca.certificate.not_valid_after_utc - NOW > timedelta(days=5 * 365)
    again = ensure_ca(tmp_path, NOW + timedelta(days=400))
    assert again.certificate == ca.certificate and load_ca(tmp_path).certificate == ca.certificate


def test_issues_the_gateway_certificate_for_the_sdk_names_from_the_ca(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path, NOW)

    material = ensure_certificate(tmp_path, NOW, ca=ca)

    leaf, *rest = _chain(material.cert_path)
    assert rest == [ca.certificate]  # trusting cert.pem alone still works, as before the CA
    assert leaf.issuer == ca.certificate.subject and not material.self_signed
    assert material.local_ca == ca.cert_path
    assert material.not_after - material.not_before <= MAX_VALIDITY
    assert set(material.hostnames) == set(LOCAL_NAMES)
    for name in ("dev.0.telequick.dev", "dev.0.clutchcall.dev", "h3", "localhost", "127.0.0.1", "::1"):
        verify_certificate(leaf, server_name=name, cafile=str(ca.cert_path))
    with pytest.raises(AlertBadCertificate):
        verify_certificate(leaf, server_name="example.com", cafile=str(ca.cert_path))


def test_a_self_signed_certificate_is_replaced_once_a_ca_exists(tmp_path: Path) -> None:
    self_signed = ensure_certificate(tmp_path, NOW)
    ca = ensure_ca(tmp_path, NOW)

    issued = ensure_certificate(tmp_path, NOW, ca=ca)

    assert self_signed.self_signed and issued.fingerprint_sha256 != self_signed.fingerprint_sha256
    assert ensure_certificate(tmp_path, NOW + timedelta(days=1), ca=ca) == issued


def test_renewal_comes_from_the_same_ca(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path, NOW)
    first = ensure_certificate(tmp_path, NOW, ca=ca)

    renewed = ensure_certificate(tmp_path, first.not_after - timedelta(days=3), ca=load_ca(tmp_path))

    assert renewed.fingerprint_sha256 != first.fingerprint_sha256
    assert _chain(renewed.cert_path)[0].issuer == ca.certificate.subject
    assert _chain(renewed.cert_path)[1] == ca.certificate


def test_a_certificate_from_a_removed_ca_is_replaced_by_a_self_signed_one(tmp_path: Path) -> None:
    ensure_certificate(tmp_path, NOW, ca=ensure_ca(tmp_path, NOW))
    (tmp_path / "tls" / "ca.pem").unlink()

    assert ensure_certificate(tmp_path, NOW, ca=load_ca(tmp_path)).self_signed


def test_a_ca_without_its_key_is_an_error_not_a_reason_to_make_another(tmp_path: Path) -> None:
    ensure_ca(tmp_path, NOW)
    key_path = tmp_path / "tls" / "ca-key.pem"
    key_path.unlink()

    with pytest.raises(ValueError, match=f"key {key_path} cannot be read"):
        ensure_ca(tmp_path, NOW)


def test_a_key_whose_certificate_was_never_written_is_no_ca(tmp_path: Path) -> None:
    first = ensure_ca(tmp_path, NOW)
    first.cert_path.unlink()

    assert load_ca(tmp_path) is None
    assert ensure_ca(tmp_path, NOW).key.private_numbers() != first.key.private_numbers()


def test_a_ca_that_expires_within_the_validity_is_refused(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path, NOW)

    with pytest.raises(ValueError, match="local CA .* expires"):
        ensure_certificate(tmp_path, ca.certificate.not_valid_after_utc - timedelta(days=1), ca=ca)


def test_load_local_certificate_reads_what_is_there_and_makes_nothing(tmp_path: Path) -> None:
    assert load_local_certificate(tmp_path) is None
    assert not (tmp_path / "tls").exists()

    self_signed = ensure_certificate(tmp_path, NOW)
    assert load_local_certificate(tmp_path) == self_signed
    ca = ensure_ca(tmp_path, NOW)
    assert load_local_certificate(tmp_path).local_ca is None  # the CA has not issued it (yet)
    issued = ensure_certificate(tmp_path, NOW, ca=ca)
    assert load_local_certificate(tmp_path) == issued and issued.local_ca == ca.cert_path

    (tmp_path / "tls" / "key.pem").unlink()
    with pytest.raises(ValueError, match="key.pem cannot be read"):
        load_local_certificate(tmp_path)
