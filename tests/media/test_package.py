"""The media package stays pure: no I/O frameworks and no dependency on the layers built on it."""

import ast
from pathlib import Path

import trunkline.media

FORBIDDEN = ("asyncio", "socket", "selectors", "threading", "time", "numpy")
FORBIDDEN_TRUNKLINE = ("sip", "rpc", "sdk", "cli", "calls")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_media_imports_nothing_it_must_not():
    files = list(Path(trunkline.media.__file__).parent.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if top == "trunkline":
                assert name.split(".")[1] in ("media", "enums"), f"{path.name} imports {name}"
                assert name.split(".")[1] not in FORBIDDEN_TRUNKLINE
