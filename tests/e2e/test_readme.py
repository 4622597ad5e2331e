"""The README's Python example runs as written: only the address and the certificate path it names
are pointed at a test gateway, whose carrier (SIPp) answers and hangs up."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.calls import carrier
from tests.peers.sipp import uas

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sdk_example() -> str:
    text = README.read_text()
    example = re.search(r"From Python:\n\n```python\n(.*?)```", text, re.DOTALL)
    assert example, "the README's 'From Python:' example is gone"
    return example.group(1)


async def test_the_readme_sdk_example_runs_as_written(start_gateway, peers):
    sipp = await peers(uas("uas_answer_bye", pause_ms=500, timeout_s=60))
    gateway = await start_gateway(carrier(sipp.port))
    host, port = gateway.rpc.address
    code = readme_sdk_example()
    assert '"127.0.0.1:9090"' in code and '".trunkline/tls/cert.pem"' in code
    code = code.replace("127.0.0.1:9090", f"{host}:{port}").replace(".trunkline/tls/cert.pem",
                                                                    str(gateway.certificate.cert_path))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)  # it ends by itself once the call has
    assert proc.returncode == 0, stderr.decode()
    events = [line.split()[1:3] for line in stdout.decode().splitlines()]
    assert ["CHANNEL_ANSWER", "ANSWERED"] in events, events
    assert events[-1] == ["CHANNEL_HANGUP_COMPLETE", "COMPLETED"], events
