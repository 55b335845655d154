"""The layering the architecture promises, checked on the source and on a fresh interpreter.

The layers, lowest first (docs/architecture.md draws them):

- ``errors``, ``extras``: the leaves.
- ``core/``: sans-IO (the scheduler, the policies, the driver, the protocol machines and codecs);
  with ``config``, ``hls``, ``playback`` and the other top-level modules, the library's base.
- ``aio/`` (real I/O), ``sim/`` (virtual time), ``tracker/`` (the embedded tracker): each on the
  base, none on another.
- ``proxy/``: on ``aio``.
- ``testing/``: the public testing kit, on the base.
- ``testbed/``: network namespaces and shaped links, on the base (the app runs swarms on it).
- ``app/``: the ``p2ploader`` command, on everything. Nothing in the library imports it.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import p2ploader

PACKAGE = Path(p2ploader.__file__).parent
FORBIDDEN_IN_CORE = {"asyncio", "httpx", "aiortc", "websockets", "anyio", "trio", "time", "socket"}
IO_LIBRARIES = {"httpx", "aiortc", "websockets"}

# Sub-package -> the sub-packages of p2ploader it must not import.
FORBIDDEN_LAYERS: dict[str, set[str]] = {
    "core": {"aio", "sim", "proxy", "tracker", "app", "testing"},
    "aio": {"sim", "proxy", "tracker", "app", "testing"},
    "sim": {"aio", "proxy", "tracker", "app", "testing"},
    "tracker": {"aio", "sim", "proxy", "app", "testing"},
    "proxy": {"sim", "tracker", "app", "testing"},
    "testing": {"aio", "sim", "proxy", "tracker", "app"},
    "testbed": {"aio", "sim", "proxy", "tracker", "app", "testing"},
}


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The file's syntax tree, parsed once per session (read only: the checks below walk it)."""
    return ast.parse(path.read_text(encoding="utf-8"))


@functools.cache
def imported_modules(path: Path) -> frozenset[str]:
    """Every absolute import of the file, wherever it is (type-checking blocks and functions too)."""
    tree = parsed(path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return frozenset(names)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt], *, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports run when the module is imported: module level, inside ``if``/``try`` blocks, but
    not inside functions or classes; ``if TYPE_CHECKING:`` blocks only with ``type_checking``."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if type_checking or not _is_type_checking(node):
                yield from _top_level_imports(node.body, type_checking=type_checking)
            yield from _top_level_imports(node.orelse, type_checking=type_checking)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level_imports(block, type_checking=type_checking)


@functools.cache
def import_graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """p2ploader module -> the p2ploader modules it imports at module level. ``from a import b``
    counts as an import of ``a.b`` when that is a module, else of ``a``."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _top_level_imports(parsed(path).body, type_checking=type_checking):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
        graph[name] = {target for target in targets if target in MODULES and target != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per back edge found by a depth-first search (empty: the graph is acyclic)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_the_core_imports_no_io_clock_or_upper_layer() -> None:
    core_files = sorted((PACKAGE / "core").rglob("*.py"))
    assert core_files
    for path in core_files:
        for name in imported_modules(path):
            assert name.split(".")[0] not in FORBIDDEN_IN_CORE, f"{path.name} imports {name}"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    for name, path in MODULES.items():
        layer = name.split(".")[1] if name.count(".") >= 1 else ""
        forbidden = FORBIDDEN_LAYERS.get(layer, set())
        for imported in imported_modules(path):
            parts = imported.split(".")
            if parts[0] == "p2ploader" and len(parts) > 1:
                assert parts[1] not in forbidden, f"{name} ({layer}/) imports {imported}"


def test_the_library_imports_neither_the_application_nor_the_testing_kit() -> None:
    for name, path in MODULES.items():
        layer = name.split(".")[1] if name.count(".") >= 1 else ""
        for imported in imported_modules(path):
            if layer != "app":
                assert not imported.startswith("p2ploader.app"), f"{name} imports {imported}"
            if layer not in {"app", "testing"}:
                assert not imported.startswith("p2ploader.testing"), f"{name} imports {imported}"


def test_the_simulator_imports_no_io_library() -> None:
    for name, path in MODULES.items():
        if name.startswith("p2ploader.sim"):
            for imported in imported_modules(path):
                assert imported.split(".")[0] not in IO_LIBRARIES, f"{name} imports {imported}"


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_circles() -> None:
    graph = import_graph()
    assert "p2ploader.core.policies.registry" in graph["p2ploader.core.policies"]
    assert circles(graph) == []


def test_no_import_circles_through_type_checking_imports_either() -> None:
    # A circle that only the type checker follows is still a circle in the design (the loader and
    # its audio/subtitles companions were one: aio.alternates now names a protocol, TrackLoader).
    graph = import_graph(type_checking=True)
    assert "p2ploader.aio.alternates" in graph["p2ploader.aio.loader"]
    assert circles(graph) == []


def test_type_checking_imports_count_in_the_graph() -> None:
    # p2ploader.p2pml2_config imports the config only for type checking (if it stops, pick another).
    assert "p2ploader.config" not in import_graph()["p2ploader.p2pml2_config"]
    assert "p2ploader.config" in import_graph(type_checking=True)["p2ploader.p2pml2_config"]


def test_the_policy_base_and_registry_know_no_concrete_policy() -> None:
    policies = PACKAGE / "core" / "policies"
    builtins = {f"p2ploader.core.policies.{path.stem}" for path in policies.glob("*.py")} - {
        "p2ploader.core.policies.__init__",
        "p2ploader.core.policies.base",
        "p2ploader.core.policies.registry",
    }
    assert builtins == {
        "p2ploader.core.policies.p2pml06",
        "p2ploader.core.policies.p2pml22",
        "p2ploader.core.policies.live",
    }
    for name in ("base.py", "registry.py"):
        assert not imported_modules(policies / name) & builtins, name


def test_any_lookup_by_name_finds_the_built_in_policies() -> None:
    # The package wires the built-ins, so importing the registry alone (which imports the
    # package first) registers them.
    code = (
        "from p2ploader.core.policies.registry import available_policies\n"
        "print(','.join(available_policies()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "p2ploader-live,p2pml-0.6,p2pml-2.2"


def test_importing_the_core_and_config_pulls_in_no_network_library() -> None:
    code = (
        "import sys, p2ploader, p2ploader.core.scheduler, p2ploader.config\n"
        "import p2ploader.hls, p2ploader.playback\n"
        "bad = [m for m in ('httpx', 'aiortc', 'websockets') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_the_library_pulls_in_no_application_or_testing_module() -> None:
    code = (
        "import sys, p2ploader, p2ploader.aio.loader, p2ploader.sim, p2ploader.tracker, p2ploader.proxy\n"
        "p2ploader.open_loader\n"
        "bad = [m for m in sys.modules if m.startswith(('p2ploader.app', 'p2ploader.testing'))]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_curated_and_sorted() -> None:
    assert len(set(p2ploader.__all__)) == len(p2ploader.__all__)
    for name in p2ploader.__all__:
        assert getattr(p2ploader, name) is not None, name
    assert not any(name.startswith("_") and name != "__version__" for name in p2ploader.__all__)
