"""The ``app_args`` of the mid-call verbs (ExecuteDialplan 7-12, PROTOCOL.md §6), read strictly so a
mistake is refused with a message saying what is wrong instead of doing something else."""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.calls.errors import CallError
from trunkline.enums import DialplanAction, ErrorCode

DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_MODES = ("rfc2833", "info", "inband")
DTMF_MIN_MS = 40
DTMF_MAX_MS = 4000


@dataclass(frozen=True)
class DtmfRequest:
    digit: str
    mode: str
    duration_ms: int


def _invalid(message: str) -> CallError:
    return CallError(ErrorCode.ERR_VALIDATION_FAILED, message)


def parse_send_dtmf(args: str) -> DtmfRequest:
    """``"<digit>:<mode>:<ms>"``, e.g. ``"5:rfc2833:160"``; the digit may be lower-case (a-d)."""
    parts = args.split(":")
    if len(parts) != 3:
        raise _invalid(f"SEND_DTMF app_args {args!r}: expected '<digit>:<mode>:<ms>', e.g. '5:rfc2833:160'")
    digit, mode, ms = (part.strip() for part in parts)
    digit = digit.upper()
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise _invalid(f"SEND_DTMF digit {parts[0]!r}: expected one of 0-9 * # A-D")
    mode = mode.lower()
    if mode not in DTMF_MODES:
        raise _invalid(f"SEND_DTMF mode {parts[1]!r}: expected {', '.join(DTMF_MODES)}")
    if not ms.isdigit() or not DTMF_MIN_MS <= int(ms) <= DTMF_MAX_MS:
        raise _invalid(f"SEND_DTMF duration {parts[2]!r}: "
                       f"expected whole milliseconds from {DTMF_MIN_MS} to {DTMF_MAX_MS}")
    return DtmfRequest(digit, mode, int(ms))


def parse_wire_flag(verb: DialplanAction, args: str) -> bool:
    """MUTE/UNMUTE: ``""`` acts on the gateway's audio only, ``"wire"`` also re-INVITEs."""
    if args not in ("", "wire"):
        raise _invalid(f"{verb.name} app_args {args!r}: expected '' (audio only) or 'wire' (also re-INVITE)")
    return args == "wire"


def require_no_args(verb: DialplanAction, args: str) -> None:
    if args:
        raise _invalid(f"{verb.name} takes no app_args, got {args!r}")
