"""The gateway's TLS certificate material: configured files, or a local one made and kept fresh.

A QUIC listener needs a certificate before it can accept anyone, and a browser pinning it through
WebTransport ``serverCertificateHashes`` needs its SHA-256 fingerprint and a validity of at most
14 days (PROTOCOL.md §1). Clients that verify against a CA bundle instead (the public SDKs) trust
the data directory's local CA, made on request, which then issues those short-lived certificates.
This package owns those files and that fingerprint and nothing else; it must not import ``rpc``,
``sdk``, ``cli`` or ``calls``, which hand it paths and a clock and log the result.
"""

from trunkline.certs.ca import LocalCa, ensure_ca, load_ca
from trunkline.certs.local import LOCAL_NAMES, MAX_VALIDITY, ensure_certificate, load_local_certificate
from trunkline.certs.material import CertificateMaterial, load_certificate

__all__ = [
    "LOCAL_NAMES",
    "MAX_VALIDITY",
    "CertificateMaterial",
    "LocalCa",
    "ensure_ca",
    "ensure_certificate",
    "load_ca",
    "load_certificate",
    "load_local_certificate",
]
