"""``trunkline cert``: shows the certificate of the gateway that uses a data directory, and with
``--ca`` makes the local CA the public SDKs can trust."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.cli.test_cli import TRUNKLINE, free_udp_port, run


def _fields(stdout: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in stdout.splitlines() if not line.startswith("trust"))


def _chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_where_no_gateway_ran_it_says_so_and_makes_nothing(tmp_path):
    result = run("cert", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no gateway certificate in {tmp_path / '.trunkline'}: no gateway ran with this data directory; "
        "pass the gateway's --config or --data-dir, or make a local CA with `trunkline cert --ca`")
    assert list(tmp_path.iterdir()) == []


def test_ca_makes_a_private_ca_once_and_prints_how_to_trust_it(tmp_path):
    result = run("cert", "--ca", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    tls = tmp_path / ".trunkline" / "tls"
    assert (tls / "ca-key.pem").stat().st_mode & 0o077 == 0
    fields = _fields(result.stdout)
    assert fields["ca"] == str(tls / "ca.pem")
    assert f'trust it     cat {tls / "ca.pem"} >> "$(python -m certifi)"' in result.stdout.splitlines()
    leaf, ca = _chain(tls / "cert.pem")
    assert ca == _chain(tls / "ca.pem")[0] and leaf.issuer == ca.subject
    assert fields["sha256"] == leaf.fingerprint(hashes.SHA256()).hex(":").upper()
    assert fields["certificate"] == f"{tls / 'cert.pem'}  (local CA)"
    assert fields["names"] == "localhost, dev.0.telequick.dev, dev.0.clutchcall.dev, h3, 127.0.0.1, ::1"

    again = run("cert", "--ca", cwd=tmp_path)
    shown = run("cert", cwd=tmp_path)
    assert _chain(tls / "ca.pem")[0] == ca  # never a second CA to trust
    assert _fields(again.stdout) == _fields(shown.stdout) == fields


def test_config_and_data_dir_pick_the_gateway(tmp_path):
    (tmp_path / "gw.toml").write_text('[server]\ndata_dir = "state"\ncert_names = ["gw.example.test"]\n')
    made = run("cert", "--ca", "--config", "gw.toml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "gw.example.test" in _fields(made.stdout)["names"]

    for args in (["cert", "--config", "gw.toml"], ["cert", "--data-dir", "state"], ["--data-dir", "state", "cert"]):
        shown = run(*args, cwd=tmp_path)
        assert (shown.returncode, _fields(shown.stdout)["sha256"]) == (0, _fields(made.stdout)["sha256"]), args
    assert run("cert", cwd=tmp_path).returncode == 1  # ./.trunkline is not that gateway's


def test_configured_files_are_shown_and_get_no_ca(tmp_path):
    run("cert", "--ca", "--data-dir", "made", cwd=tmp_path)
    (tmp_path / "gw.toml").write_text('[server]\ncert_file = "made/tls/cert.pem"\nkey_file = "made/tls/key.pem"\n')

    shown = run("cert", "--config", "gw.toml", cwd=tmp_path)
    refused = run("cert", "--ca", "--config", "gw.toml", cwd=tmp_path)

    assert shown.returncode == 0 and _fields(shown.stdout)["certificate"].endswith("cert.pem  (configured)")
    assert "ca" not in _fields(shown.stdout)
    assert refused.returncode == 2 and "a local CA only issues the local certificate" in refused.stderr


def test_a_broken_local_certificate_names_the_file(tmp_path):
    run("cert", "--ca", cwd=tmp_path)
    (tmp_path / ".trunkline" / "tls" / "key.pem").unlink()

    result = run("cert", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("error: TLS private key .trunkline/tls/key.pem cannot be read")


def test_the_cli_trusts_a_local_gateway_whose_certificate_comes_from_the_ca(tmp_path):
    assert run("cert", "--ca", cwd=tmp_path).returncode == 0
    port = free_udp_port()
    (tmp_path / "gw.toml").write_text(f'[server]\nquic_listen = "127.0.0.1:{port}"\n[sip]\nlisten = "127.0.0.1:0"\n')
    proc = subprocess.Popen([*TRUNKLINE, "serve", "--config", "gw.toml"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while (result := run("--endpoint", f"127.0.0.1:{port}", "--timeout", "2", "buckets", cwd=tmp_path)).returncode:
            assert proc.poll() is None, f"serve exited: {proc.communicate()[0]}"
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        assert _fields(run("cert", cwd=tmp_path).stdout)["certificate"].endswith("(local CA)")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_webhook_secret_is_made_once_in_the_gateways_data_dir(tmp_path):
    first = run("webhook", "secret", cwd=tmp_path)
    assert first.returncode == 0 and first.stdout.strip().startswith("whsec_"), first.stderr
    assert run("webhook", "secret", cwd=tmp_path).stdout == first.stdout
    assert (tmp_path / ".trunkline" / "webhook_secret").read_text().strip() == first.stdout.strip()
    elsewhere = run("webhook", "secret", "--data-dir", "other", cwd=tmp_path)
    assert elsewhere.stdout != first.stdout and (tmp_path / "other" / "webhook_secret").exists()
