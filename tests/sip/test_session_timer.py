"""RFC 4028 session timer decisions, without sockets: what we ask, what was granted, what we answer."""

from __future__ import annotations

from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.session_timer import Session, SessionTimers, parse_session_expires

TIMERS = SessionTimers(session_expires=1800, min_se=90)


def _headers(**fields: str) -> Headers:
    return Headers((name.replace("_", "-"), value) for name, value in fields.items())


def _response(**fields: str) -> SipResponse:
    return SipResponse(200, "OK", _headers(**fields))


def _request(**fields: str) -> SipRequest:
    return SipRequest("UPDATE", "sip:gw@127.0.0.1", _headers(**fields))


def test_parse_session_expires() -> None:
    assert parse_session_expires("1800;refresher=uac") == (1800, "uac")
    assert parse_session_expires(" 90 ; Refresher = UAS ") == (90, "uas")
    assert parse_session_expires("600;refresher=nobody") == (600, None)
    assert parse_session_expires("soon") is None and parse_session_expires(None) is None


def test_our_requests_offer_the_timer_and_name_the_refresher_once_there_is_one() -> None:
    assert TIMERS.request_headers(1800) == [("Supported", "timer"), ("Session-Expires", "1800"), ("Min-SE", "90")]
    assert ("Session-Expires", "600;refresher=uas") in TIMERS.request_headers(600, "uas")


def test_what_a_2xx_grants() -> None:
    assert TIMERS.granted(_response(Session_Expires="600;refresher=uac")) == Session(600, True)
    assert TIMERS.granted(_response(Session_Expires="600;refresher=uas")) == Session(600, False)
    assert TIMERS.granted(_response()) is None  # the peer does not do session timers
    assert TIMERS.granted(_response(Session_Expires="5;refresher=uac")) == Session(90, True)  # never under Min-SE


def test_when_our_next_duty_is_due() -> None:
    assert Session(90, True).due_in == 45  # refresh at half the interval
    assert Session(90, False).due_in == 60  # expiry minus a third
    assert Session(1800, False).due_in == 1768  # expiry minus 32 s


def test_a_422_asks_for_a_longer_interval_only_once_it_is_longer() -> None:
    too_short = SipResponse(422, "Session Interval Too Small", _headers(Min_SE="3600"))
    assert TIMERS.retry_interval(too_short, 1800) == 3600
    assert TIMERS.retry_interval(too_short, 3600) is None
    assert TIMERS.retry_interval(SipResponse(422, "Too Small", Headers()), 1800) is None


def test_answering_a_peers_refresh() -> None:
    status, headers, session = TIMERS.answer(_request(Session_Expires="600;refresher=uac", Supported="timer"))
    assert (status, session) == (200, Session(600, False))
    assert headers == [("Session-Expires", "600;refresher=uac"), ("Require", "timer")]
    status, headers, session = TIMERS.answer(_request(Session_Expires="600", Supported="100rel, timer"))
    assert session == Session(600, False) and ("Require", "timer") in headers  # the peer refreshes
    status, headers, session = TIMERS.answer(_request(Session_Expires="600"))
    assert headers == [("Session-Expires", "600;refresher=uas")] and session == Session(600, True)
    assert TIMERS.answer(_request()) == (200, [("Session-Expires", "1800;refresher=uas")], Session(1800, True))
    assert TIMERS.answer(_request(Session_Expires="30")) == (422, [("Min-SE", "90")], None)
