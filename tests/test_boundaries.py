"""Each package imports only what its ``__init__`` docstring allows, so the layering stays true:
pure cores stay pure, the domain stays free of wire formats, the SDK ships without the gateway."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "trunkline"

FORBIDDEN = {
    "wire": {"asyncio", "socket", "trunkline.rpc", "trunkline.sdk", "trunkline.calls", "aioquic"},
    "sip": {"asyncio", "socket", "trunkline.media", "trunkline.calls", "trunkline.rpc"},
    "media": {"asyncio", "socket", "trunkline.sip", "trunkline.calls", "trunkline.rpc"},
    "calls": {"socket", "aioquic", "websockets", "trunkline.wire", "trunkline.rpc", "trunkline.sdk",
              "trunkline.cli", "trunkline.sip", "trunkline.sip_engine", "trunkline.media",
              "trunkline.media_engine", "trunkline.ai", "trunkline.telephony"},
    "sdk": {"trunkline.rpc", "trunkline.calls", "trunkline.sip", "trunkline.sip_engine", "trunkline.media",
            "trunkline.media_engine", "trunkline.telephony", "trunkline.gateway", "trunkline.ai"},
    "rpc": {"trunkline.sdk", "trunkline.cli", "trunkline.sip", "trunkline.sip_engine", "trunkline.telephony",
            "trunkline.ai"},
    "ai": {"trunkline.rpc", "trunkline.wire", "trunkline.sdk", "trunkline.cli", "trunkline.sip",
           "trunkline.sip_engine", "trunkline.calls", "trunkline.telephony"},
    "telephony": {"trunkline.rpc", "trunkline.wire", "trunkline.sdk", "trunkline.cli"},
    "auth": {"trunkline.rpc", "trunkline.sdk", "trunkline.cli", "trunkline.calls", "socket", "asyncio"},
    "certs": {"trunkline.rpc", "trunkline.sdk", "trunkline.cli", "trunkline.calls"},
    "store": {"trunkline.rpc", "trunkline.sdk", "trunkline.cli", "trunkline.sip", "trunkline.sip_engine",
              "trunkline.media", "trunkline.media_engine", "trunkline.ai", "trunkline.telephony", "socket"},
}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_its_boundary(package):
    offending = []
    for path in sorted((SRC / package).rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                offending.append(f"{path.relative_to(SRC)} imports {name}")
    assert offending == []
