"""REFER's implicit subscription (RFC 3515) and the headers and sipfrag bodies it is read from."""

import pytest

from trunkline.sip.message import SipParseError
from trunkline.sip.refer import (
    NO_EXPIRES_WAIT_S,
    ReferOutcome,
    ReferSubscription,
    parse_event,
    parse_sipfrag_status,
    parse_subscription_state,
)

SIPFRAG = "message/sipfrag;version=2.0"


@pytest.mark.parametrize("body,expected", [
    (b"SIP/2.0 200 OK\r\n", (200, "OK")),
    (b"SIP/2.0 100 Trying", (100, "Trying")),
    (b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n", (486, "Busy Here")),
    (b"\r\nSIP/2.0 603 Decline\n", (603, "Decline")),  # bare LF, a stray leading CRLF
    (b"SIP/2.0 180\r\n", (180, "")),  # no reason phrase
])
def test_sipfrag_status_line(body, expected):
    assert parse_sipfrag_status(body) == expected


@pytest.mark.parametrize("body", [b"", b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 2000 OK", b"SIP/3.0 200 OK",
                                  b"SIP/2.0 099 Odd", b"HTTP/1.1 200 OK", b"\xff\xfe"])
def test_sipfrag_without_a_status_line(body):
    assert parse_sipfrag_status(body) is None


def test_event_and_subscription_state_headers():
    assert parse_event("refer") == ("refer", {})
    assert parse_event(" Refer ;id=93809824") == ("refer", {"id": "93809824"})
    active = parse_subscription_state("active;expires=60")
    assert (active.state, active.expires, active.reason) == ("active", 60, None)
    ended = parse_subscription_state("terminated;reason=noresource")
    assert (ended.state, ended.expires, ended.reason) == ("terminated", None, "noresource")
    assert parse_subscription_state("pending;expires=soon").expires is None
    for bad in ("", ";expires=5", "act ive", "active;=5"):
        with pytest.raises(SipParseError):
            parse_subscription_state(bad)


def test_a_2xx_sipfrag_is_success_and_later_reports_change_nothing():
    sub = ReferSubscription(t1=0.5)
    sub.refer_answered(202, now=10.0)
    assert sub.outcome is None and sub.deadline == 10.0 + 32.0
    assert sub.receive_notify("refer", "active;expires=60", SIPFRAG, b"SIP/2.0 100 Trying\r\n", now=11.0) == 200
    assert sub.outcome is None and sub.last_progress == (100, "Trying") and sub.deadline == 71.0
    assert sub.receive_notify("refer", "terminated;reason=noresource", SIPFRAG, b"SIP/2.0 200 OK\r\n", now=12.0) == 200
    assert sub.outcome == ReferOutcome(True, 200, "200 OK") and sub.deadline is None
    assert sub.receive_notify("refer", "terminated", SIPFRAG, b"SIP/2.0 503 Oops\r\n", now=13.0) == 200
    assert sub.outcome.succeeded


def test_a_failure_sipfrag_fails_the_transfer():
    sub = ReferSubscription()
    sub.refer_answered(202, now=0.0)
    sub.receive_notify("refer", "active", SIPFRAG, b"SIP/2.0 180 Ringing\r\n", now=1.0)
    sub.receive_notify("refer", "terminated;reason=noresource", SIPFRAG, b"SIP/2.0 486 Busy Here\r\n", now=2.0)
    assert sub.outcome == ReferOutcome(False, 486, "486 Busy Here")


def test_a_refused_or_unanswered_refer_fails_at_once():
    for status in (603, 405, 408, 503):
        sub = ReferSubscription()
        sub.refer_answered(status, now=0.0)
        assert sub.outcome is not None and not sub.outcome.succeeded and sub.outcome.status == status


def test_terminated_without_a_final_report_fails():
    sub = ReferSubscription()
    sub.refer_answered(202, now=0.0)
    sub.receive_notify("refer", "active", SIPFRAG, b"SIP/2.0 100 Trying", now=1.0)
    sub.receive_notify("refer", "terminated;reason=timeout", "", b"", now=2.0)
    assert sub.outcome is not None and not sub.outcome.succeeded
    assert "timeout" in sub.outcome.reason and "100 Trying" in sub.outcome.reason


def test_a_notify_may_overtake_the_202():
    sub = ReferSubscription()
    sub.receive_notify("refer", "active;expires=30", SIPFRAG, b"SIP/2.0 100 Trying", now=1.0)
    sub.refer_answered(202, now=1.5)
    assert sub.deadline == 31.0  # the NOTIFY's expires, not the wait for a first NOTIFY
    sub.receive_notify("refer", "terminated", SIPFRAG, b"SIP/2.0 200 OK", now=2.0)
    sub.refer_answered(202, now=2.5)
    assert sub.outcome == ReferOutcome(True, 200, "200 OK")


def test_a_peer_that_never_notifies_lapses_after_64_t1():
    sub = ReferSubscription(t1=0.5)
    sub.refer_answered(202, now=100.0)
    assert sub.expire(now=131.9) is None
    outcome = sub.expire(now=132.0)
    assert outcome is not None and not outcome.succeeded and outcome.status == 408
    assert outcome.reason == "no NOTIFY before the subscription lapsed"


def test_progress_without_expires_keeps_the_subscription_for_the_default_wait():
    sub = ReferSubscription()
    sub.refer_answered(202, now=0.0)
    sub.receive_notify("refer", None, SIPFRAG, b"SIP/2.0 180 Ringing", now=5.0)
    assert sub.deadline == 5.0 + NO_EXPIRES_WAIT_S
    assert sub.expire(now=5.0 + NO_EXPIRES_WAIT_S - 1) is None
    assert sub.expire(now=5.0 + NO_EXPIRES_WAIT_S).status == 408


def test_bad_notifies_are_refused_and_ignored():
    sub = ReferSubscription()
    sub.refer_answered(202, now=0.0)
    assert sub.receive_notify("dialog", "active", SIPFRAG, b"SIP/2.0 200 OK", now=1.0) == 489
    assert sub.receive_notify(None, "active", SIPFRAG, b"SIP/2.0 200 OK", now=1.0) == 400
    assert sub.receive_notify("refer", ";;", SIPFRAG, b"SIP/2.0 200 OK", now=1.0) == 400
    assert sub.outcome is None and sub.deadline == 32.0
    # a body that is not a sipfrag is progress without news
    assert sub.receive_notify("refer", "active;expires=10", "text/plain", b"SIP/2.0 200 OK", now=2.0) == 200
    assert sub.outcome is None and sub.deadline == 12.0
