"""The gateway's TLS certificate material: configured files, or a local one made and kept fresh.

A QUIC listener needs a certificate before it can accept anyone, and a browser pinning it through
WebTransport ``serverCertificateHashes`` needs its SHA-256 fingerprint and a validity of at most
14 days (PROTOCOL.md §1). This package owns those files and that fingerprint and nothing else; it
must not import ``rpc``, ``sdk``, ``cli`` or ``calls``, which hand it paths and a clock and log the
result.
"""

from trunkline.certs.material import CertificateMaterial, load_certificate
from trunkline.certs.self_signed import MAX_VALIDITY, ensure_certificate

__all__ = ["MAX_VALIDITY", "CertificateMaterial", "ensure_certificate", "load_certificate"]
