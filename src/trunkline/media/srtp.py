"""SRTP with SDES keys (RFC 3711, RFC 4568) for trunks that require encrypted media.

Keys travel in the SDP as ``a=crypto:<tag> AES_CM_128_HMAC_SHA1_80 inline:<base64 key||salt>``: each
side offers the key it will send with, and decrypts with the other's. The cipher work is libsrtp's,
through pylibsrtp (maintained, wheels for Linux and macOS; the same library browsers and Asterisk
use): this module parses and writes the attribute and wraps one call's two directions as pure
bytes-in, bytes-out transforms, so the media session stays the only I/O.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

import pylibsrtp

from trunkline.media.errors import MediaError

#: The one suite we offer and accept: what every SDES carrier supports (RFC 4568 §6.2.1).
SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_SALT_BYTES = 30  # 16 bytes of master key, 14 of master salt
_CRYPTO = re.compile(r"^(\d{1,9}) +([A-Za-z0-9_]+) +inline:([A-Za-z0-9+/=]+)(\|[^ ]*)?(?: .*)?$")


class SrtpError(MediaError):
    """A crypto attribute we cannot use, or a packet that does not authenticate."""


@dataclass(frozen=True, slots=True)
class SdesKey:
    """One side's master key and salt, and the tag that pairs an answer's line with the offer's."""

    tag: int
    key_salt: bytes

    @classmethod
    def generate(cls, tag: int = 1) -> "SdesKey":
        return cls(tag, os.urandom(KEY_SALT_BYTES))

    def attribute_value(self) -> str:
        """The value of an ``a=crypto`` line for this key."""
        return f"{self.tag} {SUITE} inline:{base64.b64encode(self.key_salt).decode()}"


def parse_crypto(value: str) -> SdesKey:
    """One ``a=crypto`` value; :class:`SrtpError` for another suite, a bad key, or key parameters we do
    not support (a lifetime or MKI after the key: RFC 4568 lets us refuse them)."""
    match = _CRYPTO.match(value.strip())
    if match is None:
        raise SrtpError(f"malformed crypto attribute {value!r}")
    tag, suite, key, params = match.groups()
    if suite != SUITE:
        raise SrtpError(f"crypto suite {suite} is not supported (only {SUITE})")
    if params:
        raise SrtpError(f"crypto key parameters {params[1:]!r} (lifetime/MKI) are not supported")
    try:
        key_salt = base64.b64decode(key, validate=True)
    except binascii.Error:
        raise SrtpError("crypto key is not base64") from None
    if len(key_salt) != KEY_SALT_BYTES:
        raise SrtpError(f"crypto key is {len(key_salt)} bytes, {SUITE} needs {KEY_SALT_BYTES}")
    return SdesKey(int(tag), key_salt)


def pick_crypto(values: list[str]) -> SdesKey:
    """The first offered line we can use (an offer may list several suites, most preferred first)."""
    problems = []
    for value in values:
        try:
            return parse_crypto(value)
        except SrtpError as exc:
            problems.append(str(exc))
    raise SrtpError("no usable crypto attribute: " + ("; ".join(problems) or "none offered"))


class SrtpContext:
    """One call's SRTP and SRTCP both ways: ``local`` encrypts what we send, ``remote`` decrypts what
    the far end sends. Replays and forgeries raise :class:`SrtpError` (the packet is to be dropped)."""

    __slots__ = ("_out", "_in")

    def __init__(self, local: SdesKey, remote: SdesKey) -> None:
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        self._out = pylibsrtp.Session(pylibsrtp.Policy(local.key_salt, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, 0, profile))
        self._in = pylibsrtp.Session(pylibsrtp.Policy(remote.key_salt, pylibsrtp.Policy.SSRC_ANY_INBOUND, 0, profile))

    def protect(self, rtp: bytes) -> bytes:
        return self._out.protect(rtp)

    def unprotect(self, srtp: bytes) -> bytes:
        try:
            return self._in.unprotect(srtp)
        except pylibsrtp.Error as exc:
            raise SrtpError(f"SRTP packet refused: {exc}") from None

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._out.protect_rtcp(rtcp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        try:
            return self._in.unprotect_rtcp(srtcp)
        except pylibsrtp.Error as exc:
            raise SrtpError(f"SRTCP packet refused: {exc}") from None
