"""SIP final responses to hangup status and Q.850 cause (RFC 3398 §7.2.4.1, with the usual
additions for codes it leaves out)."""

from __future__ import annotations

NORMAL_CLEARING = 16
USER_BUSY = 17
NO_ANSWER = 19
NUMBER_CHANGED = 22
REDIRECTION = 23  # a 3xx not followed; RFC 3398 §8.2.6.1 maps 23 to SIP and 301 to 22 the other way
DESTINATION_OUT_OF_ORDER = 27
TEMPORARY_FAILURE = 41
RECOVERY_ON_TIMER_EXPIRY = 102

# The SIP engine's statuses for an INVITE that got no SIP response (sip_engine.call.NO_RESPONSE and
# TRANSPORT_FAILED; this package may not import it): both FAILED, the trunk is at fault.
NO_RESPONSE_STATUS = 1408
TRANSPORT_FAILED_STATUS = 1503

_CAUSE_BY_STATUS = {
    301: NUMBER_CHANGED,
    400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21, 408: 102, 410: 22,
    413: 127, 414: 127, 415: 79, 416: 127, 420: 127, 421: 127, 423: 127, 480: 18, 481: 41,
    482: 25, 483: 25, 484: 28, 485: 1, 486: 17, 487: 127, 488: 65, 500: 41, 501: 79, 502: 38,
    503: 41, 504: 102, 505: 127, 513: 127, 600: 17, 603: 21, 604: 1, 606: 58,
    NO_RESPONSE_STATUS: RECOVERY_ON_TIMER_EXPIRY, TRANSPORT_FAILED_STATUS: DESTINATION_OUT_OF_ORDER,
}

# REJECTED is the callee declining; a 401/403/407 final is our credentials failing at the trunk, which
# is a FAILED call for the operator to fix.
_STATUS_BY_SIP = {486: "BUSY", 600: "BUSY", 408: "NO_ANSWER", 480: "NO_ANSWER", 603: "REJECTED", 606: "REJECTED"}


def cause_for_sip_status(status: int) -> int:
    if status in _CAUSE_BY_STATUS:
        return _CAUSE_BY_STATUS[status]
    return {3: REDIRECTION, 4: 127, 5: 41, 6: 31}.get(status // 100, 127)


def hangup_status_for_sip_status(status: int) -> str:
    return _STATUS_BY_SIP.get(status, "FAILED")
