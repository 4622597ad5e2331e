"""The ``trunkline`` command as a user runs it: a real ``serve`` process and real client commands."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

TRUNKLINE = [sys.executable, "-m", "trunkline"]


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*TRUNKLINE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``trunkline serve`` with a config file, in its own working directory."""
    workdir = tmp_path_factory.mktemp("serve")
    port = free_udp_port()
    (workdir / "trunkline.toml").write_text(f'[server]\nquic_listen = "127.0.0.1:{port}"\n[sip]\nlisten = "127.0.0.1:0"\n')
    proc = subprocess.Popen([*TRUNKLINE, "serve", "--config", "trunkline.toml"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    endpoint = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while run("--endpoint", endpoint, "--timeout", "2", "buckets", cwd=workdir).returncode:  # answers RPCs
        assert proc.poll() is None, f"serve exited: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.2)
    yield workdir, endpoint
    proc.terminate()
    output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, output  # SIGTERM is a clean stop


def test_cert_prints_the_fingerprint_of_the_served_certificate(served):
    workdir, _ = served
    result = run("cert", "--config", "trunkline.toml", cwd=workdir)
    assert result.returncode == 0, result.stderr
    fingerprint = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("sha256"))
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate((workdir / ".trunkline" / "tls" / "cert.pem").read_bytes())
    on_disk = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert fingerprint == on_disk, (result.stdout, on_disk)


def test_output_prints_hex_pairs_that_look_like_emoji_codes_as_they_are():
    from trunkline.cli.main import err, out

    for console in (out, err):
        with console.capture() as captured:
            console.print("sha256 3F:CD:AB:2C")
        assert captured.get().strip() == "sha256 3F:CD:AB:2C"


def test_client_command_reports_a_refusal_in_one_line_and_fails(served):
    workdir, endpoint = served
    result = run("dial", "5551234", "--trunk", "carrier", cwd=workdir, env={"TRUNKLINE_ENDPOINT": endpoint})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: Originate: to='5551234' is neither E.164 (+ and 8-15 digits) nor a sip:/sips: URI (ERR_INVALID_DESTINATION)")


def test_reset_style_refusal_names_the_code(served):
    workdir, endpoint = served
    result = run("--endpoint", endpoint, "bulk", "abort", "spring-sale", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: AbortBulk: ERR_INTERNAL_ERROR: not available yet on this gateway, or it failed (its log says which)")


def test_bad_input_is_refused_before_any_request(served):
    workdir, endpoint = served
    result = run("--endpoint", endpoint, "dtmf", "c1", "12x", cwd=workdir)
    assert (result.returncode, result.stderr.strip()) == (1, "error: not DTMF digits: x (use 0-9 * # A-D)")


def test_events_in_one_terminal_shows_the_call_dial_places_from_another(served):
    workdir, endpoint = served
    env = {**os.environ, "TRUNKLINE_ENDPOINT": endpoint}
    watcher = subprocess.Popen([*TRUNKLINE, "events", "--json"], cwd=workdir, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        placed = run("dial", "+15551230001", "--trunk", "carrier", cwd=workdir, env=env)
        assert placed.returncode == 0, placed.stderr
        call_sid = placed.stdout.split()[0]
        assert f"trunkline hangup {call_sid}" in placed.stderr  # it says how to follow and end the call
        for line in watcher.stdout:  # the call's first event: no matter which command started first
            if json.loads(line)["call_sid"] == call_sid:
                break
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        run("hangup", call_sid, cwd=workdir, env=env)


def test_unreachable_gateway_is_one_clear_line(tmp_path):
    result = run("--endpoint", f"127.0.0.1:{free_udp_port()}", "--timeout", "1", "hangup", "c1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach 127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_errors_name_the_key(tmp_path):
    (tmp_path / "bad.toml").write_text('[[trunks]]\nid = "x"\nport = "5060"\n')
    result = run("serve", "--config", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: config: trunks[0].port: expected int, got str '5060'"


def test_keys_create_writes_a_private_service_account_and_prints_the_tenant_entry(tmp_path):
    result = run("keys", "create", "--tenant", "acme", "--kid", "k1", "--out", "sa.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    account = json.loads((tmp_path / "sa.json").read_text())
    assert (account["tenant_id"], account["private_key_id"]) == ("acme", "k1")
    assert (tmp_path / "sa.json").stat().st_mode & 0o077 == 0
    import tomllib

    entry = tomllib.loads(result.stdout)["tenants"][0]
    assert entry["id"] == "acme" and "BEGIN PUBLIC KEY" in entry["keys"][0]["public_key_pem"]
    again = run("keys", "create", "--tenant", "acme", "--kid", "k1", "--out", "sa.json", cwd=tmp_path)
    assert again.returncode == 1  # never overwrites a private key
