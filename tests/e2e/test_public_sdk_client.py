"""Issue 10's "done when": a default open-mode gateway serves a client that frames requests exactly as
the public TeleQuick SDKs' C-FFI core does (``length = 8 + n``, ``tenant_id = "test_tenant"``, the
answers never read), and its calls carry audio both ways. A separate SDK subscriber judges each call
by its CHANNEL_HANGUP_COMPLETE, as an application would."""

from __future__ import annotations

import asyncio
import shutil
import struct

import pytest

from tests.conftest import wait_until
from tests.e2e.calls import carrier, watched_client
from tests.peers.sipp import uas
from tests.rawquic import raw_connection
from trunkline.enums import DialplanAction
from trunkline.sdk import ValidationFailed
from trunkline.wire import METHODS_BY_NAME
from trunkline.wire import dtos as d

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

TO = "+15551234567"
PACKETS = 80  # 1.6 s of 20 ms frames


class CffiClient:
    """Writes each request on its own bidi stream with FIN, framed as the C-FFI core frames it, and
    never looks at what comes back."""

    def __init__(self, raw) -> None:
        self.raw = raw

    def send(self, method: str, request: d.Dto) -> None:
        envelope = request.to_bytes()
        self.raw.send(struct.pack("<II", 8 + len(envelope), METHODS_BY_NAME[method].method_id) + envelope)

    def originate(self, call_sid: str, app: DialplanAction) -> None:
        self.send("Originate", d.OriginateRequest(trunk_id="carrier", to=TO, tenant_id="test_tenant",
                                                  call_sid=call_sid, default_app=app))

    def terminate(self, call_sid: str) -> None:
        self.send("Terminate", d.TerminateRequest(call_sid=call_sid))


async def call_through_cffi(start_gateway, peers, app: DialplanAction, *, rtp_echo: bool, sent_first: int,
                            received_first: int):
    """One call placed and ended by a C-FFI client once its media counters reached the given
    figures; returns its hangup event and SIPp's result."""
    sipp = await peers(uas("uas_answer", rtp_echo=rtp_echo, timeout_s=60))
    gateway = await start_gateway(carrier(sipp.port))  # otherwise defaults: open mode, loopback
    _, watch = await watched_client(gateway)
    sid = f"cffi-{app.name.lower()}"
    async with raw_connection(gateway) as raw:
        cffi = CffiClient(raw)
        cffi.originate(sid, app)
        await watch.until(sid, "ANSWERED")
        call = gateway.calls.find("local", sid)  # the default tenant's, whatever the request named

        def media_reached() -> bool:
            stats = call.leg.media_stats()
            return stats.packets_sent >= sent_first and stats.packets_received >= received_first

        await wait_until(media_reached, "the call's RTP")
        cffi.terminate(sid)
        hangup = await watch.hangup(sid)
    return hangup, await sipp.await_result(timeout=10)


@pytest.mark.parametrize("app", [DialplanAction.PARK, DialplanAction.ANSWER])
async def test_a_cffi_client_calls_an_echoing_carrier_and_hears_it(start_gateway, peers, app):
    """The carrier echoes, so what it returns is what the gateway sent: ANSWER has to send too."""
    hangup, result = await call_through_cffi(start_gateway, peers, app, rtp_echo=True,
                                             sent_first=PACKETS, received_first=PACKETS)
    assert (hangup.status, hangup.q850_cause, hangup.tenant_id) == ("COMPLETED", 16, "local")
    assert hangup.packets_sent >= PACKETS and hangup.packets_received >= PACKETS
    assert hangup.codec == "PCMU" and 1.0 <= hangup.estimated_mos <= 5.0
    assert result.ok, result.describe()


async def test_a_call_that_received_no_rtp_reports_mos_and_jitter_0(start_gateway, peers):
    """The gateway sends silence on ANSWER, but this carrier sends nothing back: nothing measured."""
    hangup, result = await call_through_cffi(start_gateway, peers, DialplanAction.ANSWER, rtp_echo=False,
                                             sent_first=25, received_first=0)
    assert hangup.status == "COMPLETED" and hangup.packets_sent >= 25
    assert (hangup.packets_received, hangup.jitter_ms, hangup.estimated_mos) == (0, 0.0, 0.0)
    assert result.ok, result.describe()


async def test_a_playback_of_a_missing_file_is_refused_naming_it(gateway, client, tmp_path):
    """Refused at Originate, rather than a call answered only to end at once; nothing is dialled."""
    missing = tmp_path / "greeting.wav"
    with pytest.raises(ValidationFailed, match=f"^Originate: PLAYBACK: {missing}: no such file$"):
        await client.dial(TO, trunk_id="carrier", default_app=DialplanAction.PLAYBACK, default_app_args=missing.as_uri())
    assert gateway.calls.active_calls("local") == []


async def test_a_playback_still_loading_at_answer_sends_silence_meanwhile(start_gateway, peers, client):
    """A prompt from a URL that is slow to fetch: RTP flows from the answer on, so a symmetric-RTP
    carrier hears the gateway before the prompt arrives."""
    release = asyncio.Event()

    async def slow_http(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()  # the prompt never arrives during the test
        writer.close()

    server = await asyncio.start_server(slow_http, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/greeting.wav"
    sipp = await peers(uas("uas_answer", timeout_s=60))
    gateway = await start_gateway(carrier(sipp.port))
    _, watch = await watched_client(gateway)
    try:
        response = await watch.client.dial(TO, trunk_id="carrier", default_app=DialplanAction.PLAYBACK,
                                           default_app_args=url)
        await watch.until(response.call_sid, "ANSWERED")
        call = gateway.calls.find("local", response.call_sid)
        await wait_until(lambda: call.leg.media_stats().packets_sent >= 25, "RTP while the prompt loads")
        await watch.client.terminate(response.call_sid)
        await watch.hangup(response.call_sid)
    finally:
        release.set()
        server.close()
