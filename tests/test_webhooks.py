"""The webhook signature scheme that receivers check with ``trunkline.webhooks.verify``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from trunkline.webhooks import WebhookSignatureError, sign, verify

BODY = b'{"event":"call.incoming","call_sid":"CA1"}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    header = sign("whsec_test", BODY, timestamp=1_800_000_000)
    expected = hmac.new(b"whsec_test", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"
    verify("whsec_test", BODY, header, now=1_800_000_100)


@pytest.mark.parametrize("secret, body, now, problem", [
    ("whsec_other", BODY, 1_800_000_000, "does not match"),
    ("whsec_test", BODY + b" ", 1_800_000_000, "does not match"),
    ("whsec_test", BODY, 1_800_000_301, "beyond 300 s"),
    ("whsec_test", BODY, 1_799_999_699, "beyond 300 s"),
])
def test_a_wrong_secret_a_changed_body_or_an_old_signature_is_refused(secret, body, now, problem):
    header = sign("whsec_test", BODY, timestamp=1_800_000_000)
    with pytest.raises(WebhookSignatureError, match=problem):
        verify(secret, body, header, now=now)


def test_one_matching_signature_of_several_is_enough_and_a_malformed_header_is_refused():
    old = sign("whsec_old", BODY, timestamp=1_800_000_000)
    new = sign("whsec_new", BODY, timestamp=1_800_000_000)
    verify("whsec_new", BODY, old + "," + new.split(",")[1], now=1_800_000_000)
    for header in ("", "t=1800000000", "v1=abc", "t=soon,v1=abc"):
        with pytest.raises(WebhookSignatureError, match="must carry"):
            verify("whsec_new", BODY, header, now=1_800_000_000)
