"""The engine sits between the pure media core and the call layers: it must not import upward."""

import ast
from pathlib import Path

import trunkline.media_engine

FORBIDDEN_TRUNKLINE = ("sip", "rpc", "sdk", "cli", "calls", "wire")
FORBIDDEN = ("threading", "concurrent")


def test_media_engine_imports_nothing_it_must_not():
    files = list(Path(trunkline.media_engine.__file__).parent.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                assert parts[0] not in FORBIDDEN, f"{path.name} imports {name}"
                if parts[0] == "trunkline":
                    assert parts[1] not in FORBIDDEN_TRUNKLINE, f"{path.name} imports {name}"


def test_sources_are_pure():
    source = Path(trunkline.media_engine.__file__).parent / "sources.py"
    imported = {
        node.module.split(".")[0] if isinstance(node, ast.ImportFrom) and node.module else alias.name
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not imported & {"asyncio", "socket", "time"}
