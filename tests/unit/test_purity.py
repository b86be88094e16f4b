"""The layers keep to themselves: `proxy.core` (and the pure halves of the commands) import no
I/O library; core imports nothing of the server or the commands; the server nothing of the
commands. Checked on the source (every import statement, also inside functions), so a lazy
`import httpx` in a core module fails as surely as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "proxy"
# Libraries that do I/O (network, disk through a library, processes, event loops).
IO_LIBRARIES = {
    "anyio", "asyncio", "diskcache", "h11", "httpcore", "httpx", "prometheus_client",
    "shutil", "socket", "ssl", "starlette", "subprocess", "uvicorn", "http", "urllib.request",
}  # fmt: skip
PURE = [*sorted((PACKAGE / "core").glob("*.py"))] + [
    PACKAGE / "commands" / f"{name}.py" for name in ("check_report", "prefetch_plan", "tables")
]


def imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module a source file of the package at `root` imports, relative imports made
    absolute."""
    package = ["proxy", *path.relative_to(root).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def offending(path: Path, banned: set[str], root: Path = PACKAGE) -> set[str]:
    found = imports(path, root)
    return {m for m in found if any(m == b or m.startswith(b + ".") for b in banned)}


@pytest.mark.parametrize("module", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_modules_import_no_io_library(module: Path) -> None:
    assert offending(module, IO_LIBRARIES) == set()


@pytest.mark.parametrize("module", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_modules_import_neither_server_nor_commands(module: Path) -> None:
    layer = {"proxy.server"} | ({"proxy.commands"} if module.parent.name == "core" else set())
    assert offending(module, layer) == set()


def test_the_server_imports_no_command() -> None:
    for module in sorted((PACKAGE / "server").glob("*.py")):
        assert offending(module, {"proxy.commands"}) == set(), module.name


def test_the_check_finds_an_io_import_anywhere_in_a_module(tmp_path: Path) -> None:
    core = tmp_path / "core"
    core.mkdir()
    module = core / "model.py"
    module.write_text("import re\n\ndef f():\n    import httpx\n    from ..server import app\n")
    assert offending(module, IO_LIBRARIES, tmp_path) == {"httpx"}
    assert offending(module, {"proxy.server"}, tmp_path) == {"proxy.server", "proxy.server.app"}
