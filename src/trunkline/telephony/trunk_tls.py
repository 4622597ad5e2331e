"""TLS to trunks (RFC 3261 §26): which context and which name each ``tls`` target is connected with.

The carrier's certificate must chain to the trunk's ``tls_ca`` (the system store by default) and
name the trunk's configured host, not the address it resolved to (RFC 5922 §4), so that an SRV
target or a DNS answer cannot stand in for the carrier. Contexts are built once, when the gateway
starts, because loading CA bundles and keys reads files: never on the event loop's hot path.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence

from trunkline.config import TrunkConfig
from trunkline.sip_engine.routing import SipTarget
from trunkline.telephony.trunk_dns import TrunkDirectory

log = logging.getLogger(__name__)


def client_context(trunk: TrunkConfig) -> ssl.SSLContext:
    """The trunk's trust (``tls_ca`` or the system store), and its client certificate if it has one."""
    context = ssl.create_default_context(cafile=str(trunk.tls_ca) if trunk.tls_ca else None)
    if not trunk.tls_verify:
        log.warning("trunk %s: tls_verify = false, the carrier's certificate is not checked", trunk.id)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if trunk.tls_cert is not None:
        context.load_cert_chain(trunk.tls_cert, trunk.tls_key)
    return context


class TrunkTls:
    """The SIP endpoint's ``tls_client``: a target's trunk decides its context and expected name;
    a TLS target that belongs to no trunk gets the system store and its own address."""

    def __init__(self, trunks: Sequence[TrunkConfig], directory: TrunkDirectory) -> None:
        self._directory = directory
        self._contexts = {t.id: client_context(t) for t in trunks if t.transport == "tls"}
        self._default: ssl.SSLContext | None = None

    def __call__(self, target: SipTarget) -> tuple[ssl.SSLContext, str]:
        trunk = self._directory.sent_to(target)
        if trunk is not None and trunk.id in self._contexts:
            return self._contexts[trunk.id], trunk.host.strip("[]")
        if self._default is None:
            self._default = ssl.create_default_context()
        return self._default, target.host
