"""Admission control as the protocol states it: exact token buckets with no banked bursts,
concurrency caps, and a circuit breaker with one probe at a time."""

from __future__ import annotations

import pytest

from trunkline.calls.admission import Admission, CircuitBreaker, Limits, TokenBucket
from trunkline.enums import ErrorCode


def test_a_burst_of_100_at_cps_10_gets_exactly_10_then_10_a_second():
    admission = Admission({"acme": Limits(cps=10)}, {})
    admitted = [admission.try_admit("acme", "carrier", 0.0) is None for _ in range(100)]
    assert sum(admitted) == 10 and all(admitted[:10])
    assert sum(admission.try_admit("acme", "carrier", 0.5) is None for _ in range(100)) == 5  # half a second refills 5
    assert sum(admission.try_admit("acme", "carrier", 1.5) is None for _ in range(100)) == 10


def test_a_pause_never_banks_more_than_one_second():
    bucket = TokenBucket(10, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(50)) == 10
    assert sum(bucket.take(3600.0) for _ in range(50)) == 10  # an hour idle (or a stalled loop) is still one second
    assert bucket.wait(3600.0) == pytest.approx(0.1)
    assert TokenBucket(0.5, now=0.0).capacity == 1.0  # fractional rates start one call at a time


def test_concurrency_caps_count_until_release_and_say_whose_cap():
    admission = Admission({"acme": Limits(max_concurrent=2)}, {"carrier": Limits(max_concurrent=5)})
    assert admission.try_admit("acme", "carrier", 0) is None and admission.try_admit("acme", "carrier", 0) is None
    refusal = admission.try_admit("acme", "carrier", 0)
    assert refusal.code is ErrorCode.ERR_RATE_LIMITED and refusal.message == "tenant 'acme' is at max_concurrent=2"
    admission.release("acme", "carrier")
    assert admission.try_admit("acme", "carrier", 0) is None
    assert (admission.active(tenant_id="acme"), admission.active(trunk_id="carrier")) == (2, 2)


def test_a_refused_call_takes_no_token_and_no_slot():
    admission = Admission({"acme": Limits(cps=1, max_concurrent=1)}, {"carrier": Limits(cps=100)})
    assert admission.try_admit("acme", "carrier", 0) is None
    assert admission.try_admit("acme", "carrier", 0).message == "tenant 'acme' is at max_concurrent=1"
    admission.release("acme", "carrier")
    assert admission.try_admit("acme", "carrier", 0).message == "tenant 'acme' is over its cps=1"
    assert admission.try_admit("acme", "carrier", 1.0) is None


def test_the_breaker_opens_after_failures_in_the_window_probes_once_and_closes_on_success():
    breaker = CircuitBreaker(failures=5, window_s=30, open_s=30)
    admission = Admission({}, {}, {"carrier": breaker})
    for t in range(4):
        breaker.record_failure(float(t))
    breaker.record_failure(40.0)  # the first four fell out of the 30 s window
    assert breaker.state == CircuitBreaker.CLOSED
    for t in range(41, 45):
        breaker.record_failure(float(t))
    assert breaker.state == CircuitBreaker.OPEN
    refusal = admission.try_admit("acme", "carrier", 50.0)
    assert refusal.code is ErrorCode.ERR_CIRCUIT_BREAKER
    assert admission.try_admit("acme", "carrier", 74.0) is None  # 30 s after opening: the probe
    assert admission.try_admit("acme", "carrier", 74.0).code is ErrorCode.ERR_CIRCUIT_BREAKER  # only one
    breaker.record_success(75.0)
    assert breaker.state == CircuitBreaker.CLOSED and admission.try_admit("acme", "carrier", 75.0) is None


def test_a_failed_probe_reopens_for_twice_as_long():
    breaker = CircuitBreaker(failures=1, open_s=30, max_open_s=100)
    breaker.record_failure(0.0)
    assert breaker.allow(30.0)
    breaker.record_failure(31.0)
    assert breaker.state == CircuitBreaker.OPEN and not breaker.allow(31.0 + 59) and breaker.allow(31.0 + 60)
    breaker.record_failure(92.0)
    assert breaker.open_s == 100  # capped


def test_a_probe_is_not_spent_on_a_call_the_bucket_refuses():
    breaker = CircuitBreaker(failures=1, open_s=10)
    admission = Admission({"acme": Limits(cps=1)}, {}, {"carrier": breaker})
    breaker.record_failure(0.0)
    assert admission.try_admit("acme", "other", 10.0) is None  # spends acme's one token
    assert admission.try_admit("acme", "carrier", 10.0).code is ErrorCode.ERR_RATE_LIMITED
    assert admission.try_admit("acme", "carrier", 11.0) is None  # the probe is still there
    assert admission.try_admit("acme", "carrier", 12.0).code is ErrorCode.ERR_CIRCUIT_BREAKER
