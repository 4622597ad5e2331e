"""The SIP core stays sans-I/O: no event loop, sockets, threads or upper layers."""

import ast
from pathlib import Path

import trunkline.sip

FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "time", "trio", "uvloop"}
FORBIDDEN_LAYERS = {"rpc", "sdk", "cli", "calls", "media"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_sip_package_imports_nothing_with_io_or_upper_layers() -> None:
    package_dir = Path(trunkline.sip.__file__).parent
    sources = sorted(package_dir.glob("*.py"))
    assert len(sources) >= 5
    for source in sources:
        for name in _imports(source):
            parts = name.lstrip(".").split(".")
            assert parts[0] not in FORBIDDEN, f"{source.name} imports {name}"
            if name.startswith("trunkline.") or name.startswith(".."):
                assert not FORBIDDEN_LAYERS & set(parts), f"{source.name} imports {name}"
