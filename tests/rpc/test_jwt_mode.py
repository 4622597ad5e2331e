"""JWT mode over the wire (§5): only a valid token for a configured tenant opens the connection."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.conftest import client_for, wait_until
from tests.rawquic import raw_connection
from trunkline.auth.service_account import create_service_account
from trunkline.calls.events import CallEvent
from trunkline.enums import ErrorCode, EventType
from trunkline.sdk import Unauthorized
from trunkline.wire import METHODS_BY_NAME, FrameDecoder, encode_frame
from trunkline.wire import dtos as d


@pytest.fixture
async def jwt_gateway(start_gateway):
    acme, acme_pub = create_service_account("acme", "k1", "ES256")
    globex, globex_pub = create_service_account("globex", "r1", "RS256")
    gateway = await start_gateway({
        "auth": {"mode": "jwt"},
        "tenants": [
            {"id": "acme", "keys": [{"kid": "k1", "public_key_pem": acme_pub}]},
            {"id": "globex", "keys": [{"kid": "r1", "public_key_pem": globex_pub}]},
        ],
        "trunks": [{"id": "acme-trunk", "tenant": "acme"}],
    })
    return gateway, acme, globex, acme_pub


def _claims(tenant: str, iat: float | None = None, lifetime: int = 600) -> dict:
    iat = time.time() if iat is None else iat
    return {"iss": tenant, "sub": tenant, "iat": int(iat), "exp": int(iat) + lifetime}


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def test_service_account_credentials_authenticate_the_connection(jwt_gateway):
    gateway, acme, _, _ = jwt_gateway
    async with client_for(gateway, credentials=acme) as client:
        assert client.tenant_id == "acme"
        with pytest.raises(Unauthorized, match="tenant"):  # other tenants stay out of reach
            await client.dial("+15551234567", trunk_id="acme-trunk", tenant_id="globex")
        with pytest.raises(Unauthorized):
            await client.originate_bulk(template_tenant_id="globex", template_trunk_id="acme-trunk")
        call = await client.dial("+15551234567", trunk_id="acme-trunk", tenant_id="acme")  # its own: fine
        # nothing answers on the trunk, so the call may have failed already: ended calls count too
        assert gateway.calls.find("acme", call.call_sid, include_ended=True) is not None


async def test_rs256_service_account_is_accepted(jwt_gateway):
    gateway, _, globex, _ = jwt_gateway
    async with client_for(gateway, credentials=globex) as client:
        assert client.tenant_id == "globex"


async def test_requests_before_authenticate_are_unauthorized(jwt_gateway):
    gateway, *_ = jwt_gateway
    async with client_for(gateway) as client:
        with pytest.raises(Unauthorized, match="authenticate first"):
            await client.dial("+15551234567", trunk_id="acme-trunk")
        with pytest.raises(Unauthorized):  # a method without an error field: stream reset 0x107
            await client.get_active_buckets()


def _bad_tokens(acme, acme_pub):
    other, _ = create_service_account("acme", "k1", "ES256")  # same kid, different key
    unknown_kid, _ = create_service_account("acme", "nope", "ES256")
    now = time.time()
    return {
        "expired": acme.sign_token(now - 7200, lifetime_s=3600),
        "expired 5 s ago": acme.sign_token(now - 605, lifetime_s=600),  # no leeway on exp: one instant (§5)
        "wrong signature": other.sign_token(now),
        "unknown kid": unknown_kid.sign_token(now),
        "alg none": f"{_b64({'alg': 'none', 'kid': 'k1', 'typ': 'JWT'})}.{_b64(_claims('acme'))}.",
        "HS256 with the public key": _hs256_with(acme_pub, _claims("acme")),
        "claims another tenant": jwt.encode(_claims("globex"), acme.private_key_pem, algorithm="ES256",
                                            headers={"kid": "k1"}),
        "garbage": "not-a-jwt",
    }


def _hs256_with(secret_pem: str, claims: dict) -> str:
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'k1', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(secret_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize("case", ["expired", "expired 5 s ago", "wrong signature", "unknown kid", "alg none",
                                  "HS256 with the public key", "claims another tenant", "garbage"])
async def test_bad_tokens_are_unauthorized(jwt_gateway, case):
    gateway, acme, _, acme_pub = jwt_gateway
    token = _bad_tokens(acme, acme_pub)[case]
    async with client_for(gateway) as client:
        with pytest.raises(Unauthorized) as err:
            await client.authenticate(token)
        assert err.value.code == ErrorCode.ERR_UNAUTHORIZED
        with pytest.raises(Unauthorized):  # and the connection is still not authorized
            await client.dial("+15551234567", trunk_id="acme-trunk")


async def test_an_expired_tokens_connection_gets_no_more_events(jwt_gateway):
    """§5: once the token expires the connection's event and audio streams stop (0x107) until a
    fresh token and a new StreamEvents; its client_id's events wait for replay meanwhile."""
    gateway, acme, _, _ = jwt_gateway
    async with raw_connection(gateway) as raw:
        short = acme.sign_token(time.time() - 598, lifetime_s=600)  # expires within 1-2 s
        assert (await _authenticate(raw, short)).error_code == ErrorCode.SUCCESS
        assert await raw.outcome(raw.send(_frame("StreamEvents", d.EventStreamRequest(client_id="c1")))) == (
            "data", _frame("StreamEvents", d.Empty()))
        mic = raw.send(_frame("AudioFrame", d.AudioFrame(call_sid="x", payload=b"\xff" * 160)), fin=False, uni=True)
        gateway.events.publish(_event("before"))
        await wait_until(lambda: 3 in raw.data, "the first event")
        assert await raw.outcome(3, timeout=10) == ("reset", 0x107)  # the event stream, at expiry
        assert await raw.outcome(mic) == ("reset", 0x107)  # and the client's audio stream
        assert not gateway.events.subscribers("acme", "c1")

        gateway.events.publish(_event("while-expired", client_id="c1"))
        refused = raw.send(_frame("StreamEvents", d.EventStreamRequest(client_id="c1")))
        assert await raw.outcome(refused) == ("reset", 0x107)
        assert [s for s in raw.data if s & 3 == 3] == [3]  # no new event stream was opened

        assert (await _authenticate(raw, acme.sign_token(time.time()))).error_code == ErrorCode.SUCCESS
        resubscribed = raw.send(_frame("StreamEvents", d.EventStreamRequest(client_id="c1")))
        assert (await raw.outcome(resubscribed))[0] == "data"
        await wait_until(lambda: 7 in raw.data and len(raw.data[7]) > 8, "the replayed event")
        (_, envelope), = FrameDecoder().feed(bytes(raw.data[7]))
        assert d.CallEvent.from_bytes(envelope).call_sid == "while-expired"


def _frame(method: str, dto: d.Dto) -> bytes:
    return encode_frame(METHODS_BY_NAME[method].method_id, dto)


async def _authenticate(raw, token: str) -> d.AuthResponse:
    kind, data = await raw.outcome(raw.send(_frame("Authenticate", d.AuthRequest(token=token))))
    assert kind == "data"
    (_, envelope), = FrameDecoder().feed(data)
    return d.AuthResponse.from_bytes(envelope)


def _event(call_sid: str, client_id: str = "") -> CallEvent:
    return CallEvent(call_sid=call_sid, event_type=EventType.CHANNEL_CREATE, status="INITIATED",
                     tenant_id="acme", client_id=client_id)
