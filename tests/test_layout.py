"""The package layout holds: imports point one way, no import cycles, llama_cpp only in the adapter.

Read from the source with `ast`, so every import counts, the lazy ones inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "models", "router", "evals", "server", "cli")
# What each package may import from ggroute (itself always allowed). docs/architecture.md shows the same map.
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "router": {"core", "models"},
    "evals": {"core", "models", "router"},
    "server": {"core", "models", "router"},
    "cli": {"core", "models", "router", "evals", "server"},
}
LLAMA_CPP_HOME = "ggroute.models.llamacpp"
OPENAI_HOME = "ggroute.models.remote"  # the remote backend: the only user of the openai client (and httpx under it)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return "ggroute." + ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _package(module: str) -> str:
    return module.split(".")[1]


SOURCES = _sources()


def test_every_package_has_sources() -> None:
    assert {_package(m) for m in SOURCES} == set(PACKAGES)


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_imports_point_one_way(module: str) -> None:
    own = _package(module)
    wrong = sorted(
        name for name in _imports(SOURCES[module], top_level_only=False)
        if name.startswith("ggroute.") and _package(name) != own and _package(name) not in ALLOWED[own]
    )
    assert not wrong, f"{module} ({own}/) may import only {sorted(ALLOWED[own])} of ggroute, not {wrong}"


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_llama_cpp_only_in_the_adapter(module: str) -> None:
    uses = {n for n in _imports(SOURCES[module], top_level_only=False) if n.split(".")[0] == "llama_cpp"}
    if not module.startswith(LLAMA_CPP_HOME):
        assert not uses, f"{module} imports {sorted(uses)}: only {LLAMA_CPP_HOME} may talk to llama_cpp"


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_openai_only_in_the_remote_backend(module: str) -> None:
    uses = {n for n in _imports(SOURCES[module], top_level_only=False) if n.split(".")[0] in ("openai", "httpx")}
    if not module.startswith(OPENAI_HOME):
        assert not uses, f"{module} imports {sorted(uses)}: only {OPENAI_HOME} may talk to remote servers"


def test_no_import_cycles() -> None:
    graph = {
        module: {n for n in _imports(path, top_level_only=True) if n in SOURCES and n != module}
        for module, path in SOURCES.items()
    }
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
