"""Who a connection acts for: gateway-side JWT verification and client-side service-account signing.

This package owns the rules of PROTOCOL.md §5 that decide whether a token names a tenant (which
keys exist, which algorithm each key permits, which claims must hold) and the service-account file
clients sign those tokens with. It is policy over bytes and a clock the caller hands in, so it must
not import ``rpc``, ``sdk``, ``cli``, ``calls`` or any network code; those layers import it.
"""

from trunkline.auth.keys import Algorithm
from trunkline.auth.service_account import ServiceAccount, create_service_account
from trunkline.auth.tokens import (
    MAX_TOKEN_LIFETIME_S,
    KeyRing,
    TenantKey,
    TokenRejected,
    TokenVerifier,
    VerifiedToken,
)

__all__ = [
    "MAX_TOKEN_LIFETIME_S",
    "Algorithm",
    "KeyRing",
    "ServiceAccount",
    "TenantKey",
    "TokenRejected",
    "TokenVerifier",
    "VerifiedToken",
    "create_service_account",
]
