"""Validation of where a call may go (PROTOCOL.md §6: E.164 or a sip:/sips: URI)."""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SIP_URI = re.compile(r"sips?:([^@\s<>\"]+@)?[A-Za-z0-9.\-\[\]:]+(;[^\s<>\"]*)?")


def is_valid_destination(to: str) -> bool:
    return bool(_E164.fullmatch(to) or _SIP_URI.fullmatch(to))
