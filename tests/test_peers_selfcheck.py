"""Self-check of the SIP test-peer harness (``tests/peers``), without Trunkline.

Why: Trunkline's SIP tests will blame Trunkline for any failure, so the
peers themselves must be proven first: every bundled UAS scenario is played
against a SIPp UAC on loopback, and baresip is shown to auto-answer and to
record the audio it receives.  The skip guards only help developer machines
without the packages; CI installs ``sip-tester`` and ``baresip-core``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.peers.audio import wav_stats
from tests.peers.baresip import Baresip
from tests.peers.sipp import SIPP_PCAP_DIR, Sipp, SippResult, proxy_auth_uas, uac, uas

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")
needs_baresip = pytest.mark.skipif(
    shutil.which("baresip") is None, reason="baresip not installed (apt: baresip-core)"
)

TIMEOUT_S = 10.0


def _call(server: Sipp, scenario: str = "uac_call", **uac_kwargs: object) -> tuple[SippResult, SippResult]:
    """Start ``server``, place one call at it, return (uas_result, uac_result)."""
    server.start().wait_ready()
    caller = uac(server.target, scenario, timeout_s=TIMEOUT_S, **uac_kwargs)
    try:
        caller.start()
        uac_result = caller.wait()
        uas_result = server.wait(timeout=TIMEOUT_S)
    finally:
        caller.cleanup()
        server.cleanup()
    return uas_result, uac_result


def _flow(result: SippResult) -> list[str]:
    return [f"{'>' if m.direction == 'sent' else '<'}{m.method or m.status}" for m in result.messages]


@needs_sipp
def test_answer_with_sdp_and_rtp_echo() -> None:
    srv, cli = _call(uas("uas_answer", rtp_echo=True, timeout_s=TIMEOUT_S), pause_ms=200)
    assert srv.ok and cli.ok, (srv.describe(), cli.describe())
    assert (srv.successful, srv.failed, cli.successful, cli.failed) == (1, 0, 1, 0)
    ok = cli.responses(200, direction="received", cseq_method="INVITE")[0]
    assert ok.header("Content-Type") == "application/sdp"
    for line in ("m=audio ", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"):
        assert line in ok.body
    assert _flow(srv) == ["<INVITE", ">100", ">200", "<ACK", "<BYE", ">200"]


@needs_sipp
def test_ring_then_answer() -> None:
    srv, cli = _call(uas("uas_ring_answer", pause_ms=300, timeout_s=TIMEOUT_S))
    assert srv.ok and cli.ok, (srv.describe(), cli.describe())
    codes = [m.status for m in cli.responses(direction="received", cseq_method="INVITE")]
    assert codes.index(180) < codes.index(200)


@needs_sipp
@pytest.mark.parametrize(("scenario", "code"), [("uas_busy", 486), ("uas_unavailable", 503)])
def test_rejections_are_acked_and_count_as_failed_calls(scenario: str, code: int) -> None:
    srv, cli = _call(uas(scenario, timeout_s=TIMEOUT_S))
    assert srv.ok, srv.describe()  # the UAS got its ACK
    assert cli.returncode == 1 and cli.failed == 1 and cli.successful == 0, cli.describe()
    assert cli.final_responses("received") == [code]
    assert len(srv.requests("ACK", "received")) == 1
    assert not cli.requests("BYE")


@needs_sipp
def test_ring_then_cancel() -> None:
    srv, cli = _call(uas("uas_ring_cancel", timeout_s=TIMEOUT_S), "uac_cancel", pause_ms=200)
    assert srv.ok and cli.ok, (srv.describe(), cli.describe())
    cancel = srv.requests("CANCEL", "received")
    assert len(cancel) == 1
    invite = srv.requests("INVITE", "received")[0]
    # a CANCEL must carry the INVITE's branch (RFC 3261 9.1)
    assert cancel[0].header("Via") == invite.header("Via")
    assert srv.responses(487, direction="sent", cseq_method="INVITE")
    assert srv.responses(200, direction="sent", cseq_method="CANCEL")
    assert _flow(srv)[-1] == "<ACK"


@needs_sipp
@pytest.mark.parametrize("challenge", [401, 407])
@pytest.mark.parametrize("password", ["s3cret", "wrong"])
def test_digest_auth(challenge: int, password: str) -> None:
    user, good = "alice", "s3cret"
    if challenge == 401:
        server = uas("uas_auth_401", timeout_s=TIMEOUT_S, keys={"auth_user": user, "auth_pass": good})
    else:
        server = proxy_auth_uas(user=user, password=good, timeout_s=TIMEOUT_S)
    srv, cli = _call(server, auth_user=user, auth_password=password)
    header = "Authorization" if challenge == 401 else "Proxy-Authorization"
    invites = srv.requests("INVITE", "received")
    assert len(invites) == 2, srv.describe()
    assert invites[0].header(header) is None and invites[1].header(header) is not None
    assert srv.final_responses("sent")[0] == challenge
    if password == good:
        assert srv.ok and cli.ok, (srv.describe(), cli.describe())
        assert srv.final_responses("sent")[-1] == 200
    else:
        assert srv.final_responses("sent")[-1] == 403
        # both sides end the dialog cleanly (ACK, no BYE) but count a failure
        assert srv.failed == 1 and cli.failed == 1, (srv.describe(), cli.describe())
        assert _flow(srv)[-1] == "<ACK"
        assert not cli.requests("BYE")


@needs_sipp
@pytest.mark.parametrize(("answer_dir", "hold_ok"), [("recvonly", True), ("sendrecv", False)])
def test_reinvite_sendonly_requires_recvonly_answer(answer_dir: str, hold_ok: bool) -> None:
    srv, cli = _call(
        uas("uas_reinvite_hold", timeout_s=TIMEOUT_S), "uac_reinvite", pause_ms=200, keys={"answer_dir": answer_dir}
    )
    assert cli.ok, cli.describe()
    reinvite = cli.requests("INVITE", "received")
    assert len(reinvite) == 1 and "a=sendonly" in reinvite[0].body
    assert srv.ok is hold_ok and srv.failed == (0 if hold_ok else 1), srv.describe()
    assert _flow(srv)[-2:] == ["<BYE", ">200"]  # dialog finished either way


@needs_sipp
def test_uas_hangs_up_after_pause() -> None:
    srv, cli = _call(uas("uas_answer_bye", pause_ms=600, timeout_s=TIMEOUT_S), "uac_wait_bye")
    assert srv.ok and cli.ok, (srv.describe(), cli.describe())
    assert len(cli.requests("BYE", "received")) == 1


@needs_sipp
def test_run_is_bounded_by_timeout() -> None:
    """A peer nobody calls must end by itself (SIPp -timeout), not hang CI."""
    server = uas("uas_answer", timeout_s=1).start().wait_ready()
    try:
        result = server.wait()
    finally:
        server.cleanup()
    assert not result.timed_out  # SIPp stopped by its own -timeout, before the harness had to kill it
    assert not result.ok and result.returncode != 0
    assert "timed out" in result.stderr + result.error_log


@needs_sipp
async def test_async_api() -> None:
    server = uas("uas_answer", timeout_s=TIMEOUT_S)
    caller: Sipp | None = None
    try:
        await server.astart()
        await server.await_ready()
        caller = await uac(server.target, "uac_call", timeout_s=TIMEOUT_S, pause_ms=100).astart()
        cli = await caller.await_result()
        srv = await server.await_result()
    finally:
        server.cleanup()
        if caller is not None:
            caller.cleanup()
    assert srv.ok and cli.ok, (srv.describe(), cli.describe())


# -- baresip -----------------------------------------------------------------


@needs_sipp
@needs_baresip
def test_baresip_auto_answers_and_records_sipp_pcap_audio(tmp_path: Path) -> None:
    pcap = SIPP_PCAP_DIR / "g711a.pcap"
    if not pcap.is_file():
        pytest.skip(f"{pcap} missing")
    phone = Baresip(timeout_s=20, workdir=tmp_path / "baresip").start().wait_ready()
    caller = uac(
        phone.target,
        "uac_pcap",
        service=phone.user,
        pause_ms=1500,
        timeout_s=TIMEOUT_S,
        scenario_vars={"PCAP": str(pcap)},
    )
    try:
        result = caller.start().wait()
        phone.wait_for_log(r"terminated \(duration", timeout=3)
    finally:
        caller.cleanup()
        phone.stop()
    assert result.ok, result.describe()
    assert result.responses(200, direction="received", cseq_method="INVITE"), result.describe()
    stats = wav_stats(phone.recording_path("dec"))
    assert stats.seconds >= 1.0, stats
    assert stats.rms > 300 and stats.active_fraction > 0.5, stats  # speech, not silence


@needs_sipp
@needs_baresip
def test_baresip_plays_its_wav_into_the_call(tmp_path: Path) -> None:
    """SIPp echoes baresip's RTP back, so the tone baresip plays must show
    up in baresip's own received-audio recording."""
    phone = Baresip(timeout_s=20, workdir=tmp_path / "baresip").start().wait_ready()
    caller = uac(phone.target, "uac_call", service=phone.user, rtp_echo=True, pause_ms=1500, timeout_s=TIMEOUT_S)
    try:
        result = caller.start().wait()
        phone.wait_for_log(r"terminated \(duration", timeout=3)
    finally:
        caller.cleanup()
        phone.stop()
    assert result.ok, result.describe()
    sent = wav_stats(phone.recording_path("enc"))
    got = wav_stats(phone.recording_path("dec"))
    assert sent.rms > 3000, sent  # the generated 440 Hz tone at 0.3 FS
    assert got.seconds >= 1.0 and got.active_fraction > 0.7, got
    assert got.rms > 0.5 * sent.rms, (sent, got)
