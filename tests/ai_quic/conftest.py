"""The reference echo agent from ``examples/quic_agent`` on a loopback port, and a client for it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from trunkline.certs import CertificateMaterial, ensure_certificate

SERVER_PATH = Path(__file__).resolve().parents[2] / "examples" / "quic_agent" / "server.py"


def _load_example() -> ModuleType:
    """The example is a script, not a package; load it by path under a private name."""
    name = "trunkline_example_quic_agent"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SERVER_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


agent_example = _load_example()


@pytest.fixture
def certificate(tmp_path: Path) -> CertificateMaterial:
    return ensure_certificate(tmp_path / "certs", datetime.now(UTC))


@pytest.fixture
async def agent_server(certificate: CertificateMaterial) -> AsyncIterator[object]:
    server = agent_example.EchoAgentServer(certificate.cert_path, certificate.key_path, port=0)
    await server.start()
    yield server
    server.close()


