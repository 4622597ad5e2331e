"""Webhook delivery to a real HTTP receiver on loopback: signed, retried on 5xx and connection errors
within the deadline, never redirected, never sent over http:// to a non-loopback host."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from trunkline.telephony.webhook_sender import WebhookSender, ensure_webhook_secret
from trunkline.webhooks import verify

SECRET = "whsec_test"
PAYLOAD = {"event": "call.incoming", "call_sid": "CA1", "from": "+15550001111"}


class Receiver:
    """An HTTP/1.1 server answering each POST with the next of ``statuses`` (then 200), recording the
    requests' headers and bodies."""

    def __init__(self, statuses: list[int], location: str = "") -> None:
        self.statuses = list(statuses)
        self.location = location
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        extra = f"Location: {self.location}\r\n" if self.location else ""
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver():
    servers = []

    async def start(statuses: list[int], location: str = "") -> tuple[Receiver, str]:
        r = Receiver(statuses, location)
        server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
        servers.append(server)
        return r, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks"

    yield start
    for server in servers:
        server.close()


def sender() -> WebhookSender:
    return WebhookSender(backoff_s=(0.05,))


async def test_a_delivery_is_signed_and_the_receiver_verifies_it(receiver):
    r, url = await receiver([])
    outcome = await sender().post(url, "call.incoming", PAYLOAD, SECRET, deadline=time.monotonic() + 10)
    assert (outcome.delivered, outcome.attempts, outcome.status) == (True, 1, 200)
    headers, body = r.requests[0]
    verify(SECRET, body, headers["x-telequick-signature"])
    assert json.loads(body) == PAYLOAD and headers["x-telequick-event"] == "call.incoming"


async def test_a_5xx_is_retried_under_the_same_delivery_id(receiver):
    r, url = await receiver([503, 500])
    outcome = await sender().post(url, "call.incoming", PAYLOAD, SECRET, deadline=time.monotonic() + 10)
    assert (outcome.delivered, outcome.attempts) == (True, 3)
    assert len({headers["x-telequick-delivery"] for headers, _ in r.requests}) == 1
    for headers, body in r.requests:
        verify(SECRET, body, headers["x-telequick-signature"])


async def test_a_4xx_ends_delivery_and_a_redirect_is_not_followed(receiver):
    elsewhere, elsewhere_url = await receiver([])
    r, url = await receiver([302], location=elsewhere_url)
    outcome = await sender().post(url, "call.incoming", PAYLOAD, SECRET, deadline=time.monotonic() + 10)
    assert (outcome.delivered, outcome.attempts, outcome.status) == (False, 1, 302)
    assert "redirects are not followed" in outcome.detail and elsewhere.requests == []
    r, url = await receiver([404])
    outcome = await sender().post(url, "call.incoming", PAYLOAD, SECRET, deadline=time.monotonic() + 10)
    assert (outcome.delivered, outcome.attempts, outcome.status) == (False, 1, 404)


async def test_an_unreachable_receiver_is_retried_until_the_deadline():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        outcome = await sender().post(f"http://127.0.0.1:{port}/", "call.incoming", PAYLOAD, SECRET,
                                      deadline=time.monotonic() + 1)
    assert not outcome.delivered and outcome.attempts >= 2 and outcome.status is None
    assert outcome.detail.startswith("not reached: ")


async def test_plain_http_to_a_host_off_loopback_is_never_sent():
    outcome = await sender().post("http://192.0.2.10/hooks", "call.incoming", PAYLOAD, SECRET,
                                  deadline=time.monotonic() + 10)
    assert (outcome.delivered, outcome.attempts) == (False, 0)
    assert "loopback only unless the tenant allows it" in outcome.detail


def test_the_gateways_own_secret_is_made_once_and_kept_private(tmp_path: Path):
    secret = ensure_webhook_secret(tmp_path / "data")
    assert secret.startswith("whsec_") and ensure_webhook_secret(tmp_path / "data") == secret
    assert (tmp_path / "data" / "webhook_secret").stat().st_mode & 0o077 == 0
