"""The package's import graph: imports flow one way (no cycle, not even a deferred one), only the layer and the
backends import broadcaster at run time, and only the proxy imports websockets."""

from __future__ import annotations

import ast
from pathlib import Path

import fastapi_channels

PACKAGE = Path(fastapi_channels.__file__).parent


def module_name(path: Path) -> str:
    """Return the dotted name of the package module at ``path`` (subpackages included)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Return every module ``path`` imports, at any depth (in functions too); with ``runtime_only``, not the
    imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(child) for statement in node.body for child in ast.walk(statement))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # ``from fastapi_channels import layers`` imports a module too.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    """Return, for each package module, the package modules it imports (the package itself excluded)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {
            imported for imported in imported_modules(path) if imported in modules and imported != "fastapi_channels"
        }
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: being visited, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_package_import_graph_has_no_cycle() -> None:
    graph = package_graph()
    assert "fastapi_channels.session" in graph and graph["fastapi_channels.channels"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_find_cycle_reports_a_cycle_when_there_is_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_layer_and_the_backends_import_broadcaster_at_run_time() -> None:
    importers = {
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == "broadcaster" for name in imported_modules(path, runtime_only=True))
    }
    assert importers == {"fastapi_channels.layers", "fastapi_channels.backends"}


def test_only_the_proxy_imports_websockets_and_no_module_imports_the_proxy() -> None:
    # websockets is the proxy extra's: importing the package, or any other module of it, must not need it.
    importers = {
        module_name(path)
        for path in PACKAGE.glob("*.py")
        if any(name.split(".")[0] == "websockets" for name in imported_modules(path))
    }
    assert importers == {"fastapi_channels.proxy"}
    assert not any("fastapi_channels.proxy" in imported for imported in package_graph().values())


def test_modules_import_each_other_in_the_house_order() -> None:
    graph = package_graph()
    # The per-connection centre sits between the layer and the channel classes; the app API is on top.
    assert "fastapi_channels.channels" not in graph["fastapi_channels.session"]
    assert "fastapi_channels.api" not in graph["fastapi_channels.handlers"]
    assert "fastapi_channels.api" not in graph["fastapi_channels.channels"]
    for low in ("fastapi_channels.protocol", "fastapi_channels.exceptions", "fastapi_channels.outbox"):
        assert not graph[low] & {"fastapi_channels.session", "fastapi_channels.channels", "fastapi_channels.api"}
