"""A person's mistakes at the terminal: each gets one line naming what is wrong, exit code 1, and no
traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import TRUNKLINE, free_udp_port, run, served  # noqa: F401 - served is a fixture


def assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (1, expected), result.stderr


def test_an_unresolvable_host(tmp_path: Path):
    result = run("--endpoint", "no-such-host.invalid:9090", "--timeout", "2", "hangup", "c1", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot resolve the host of no-such-host.invalid:9090: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_port_that_is_not_a_number(tmp_path: Path):
    assert_one_line(run("--endpoint", "127.0.0.1:ninety", "hangup", "c1", cwd=tmp_path),
                    "error: --endpoint '127.0.0.1:ninety': expected host:port with a port number 1-65535")


@pytest.mark.parametrize("taken, key, what", [
    ("sip", "sip.listen", "SIP (udp/tcp)"),
    ("quic", "server.quic_listen", "the TeleQuick RPC (QUIC, udp)"),
])
def test_a_port_already_in_use_names_the_listener_that_wanted_it(tmp_path: Path, taken, key, what):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        ports = {"sip": 0, "quic": 0, taken: port}
        (tmp_path / "t.toml").write_text(
            f'[server]\nquic_listen = "127.0.0.1:{ports["quic"]}"\n[sip]\nlisten = "127.0.0.1:{ports["sip"]}"\n')
        result = run("serve", "--config", "t.toml", cwd=tmp_path)
    assert_one_line(result, f"error: cannot listen for {what} on 127.0.0.1:{port}: Address already in use (set {key})")


def test_jwt_mode_without_credentials_says_how_to_give_them(tmp_path: Path):
    keys = run("keys", "create", "--tenant", "acme", "--kid", "k1", "--out", "sa.json", cwd=tmp_path)
    port = free_udp_port()
    (tmp_path / "jwt.toml").write_text(
        f'[server]\nquic_listen = "127.0.0.1:{port}"\n[sip]\nlisten = "127.0.0.1:0"\n[auth]\nmode = "jwt"\n{keys.stdout}')
    gateway = subprocess.Popen([*TRUNKLINE, "serve", "--config", "jwt.toml"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # up once it answers an authenticated client
            ready = run("--endpoint", f"127.0.0.1:{port}", "--timeout", "2", "--credentials", "sa.json", "buckets",
                        cwd=tmp_path)
            if ready.returncode == 0:
                break
            assert gateway.poll() is None and time.monotonic() < deadline, ready.stderr
            time.sleep(0.2)
        result = run("--endpoint", f"127.0.0.1:{port}", "hangup", "c1", cwd=tmp_path)
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
    assert_one_line(result, "error: Terminate: authenticate first: the gateway wants a token "
                            "(JWT mode); pass --credentials FILE or set TRUNKLINE_CREDENTIALS to a service-account "
                            "JSON (trunkline keys create)")


def test_version_and_completion_are_offered(tmp_path: Path):
    from trunkline import __version__

    version = run("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"trunkline {__version__}")
    completion = subprocess.run([sys.executable, "-m", "trunkline", "--help"], capture_output=True, text=True,
                                cwd=tmp_path, env={"COLUMNS": "200", "PATH": ""})
    assert "--install-completion" in completion.stdout


def test_config_check_says_ok_or_names_the_key(tmp_path: Path):
    (tmp_path / "good.toml").write_text('[[trunks]]\nid = "carrier"\nhost = "127.0.0.1"\n')
    good = run("config", "check", "good.toml", cwd=tmp_path)
    assert good.returncode == 0 and good.stdout.startswith("good.toml: OK: "), good
    (tmp_path / "bad.toml").write_text('[[trunks]]\nid = "carrier"\nring_timeout_s = 0\n')
    bad = run("config", "check", "bad.toml", cwd=tmp_path)
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: config: trunks[0].ring_timeout_s: 0 is outside 1..600")


def test_an_untrusted_certificate_says_it_was_refused_and_how_to_trust_it(served, tmp_path: Path):
    _, endpoint = served  # run from another directory: the gateway's certificate is not trusted there
    result = run("--endpoint", endpoint, "buckets", cwd=tmp_path)
    assert_one_line(result, f"error: cannot reach {endpoint}: the gateway's certificate was refused: self-signed "
                            "certificate; trust it with --ca FILE (`trunkline cert` in the gateway's directory shows the file)")


def test_a_store_that_is_not_a_database_stops_serve_naming_the_file(tmp_path: Path):
    (tmp_path / ".trunkline").mkdir()
    (tmp_path / ".trunkline" / "trunkline.db").write_text("not a database " * 500)
    (tmp_path / "t.toml").write_text('[server]\nquic_listen = "127.0.0.1:0"\n[sip]\nlisten = "127.0.0.1:0"\n')
    store = tmp_path / ".trunkline" / "trunkline.db"
    assert_one_line(run("serve", "--config", "t.toml", cwd=tmp_path),
                    f"error: store {store}: unusable (file is not a database); move it away to start with an "
                    "empty store")
