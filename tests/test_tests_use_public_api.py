"""Tests of the loader and its peers observe them through the public API, never their internals.

A test that reads ``loader._scheduler._peers`` breaks with every refactoring of the loader and
checks what the code happens to hold rather than what it does. This scan fails when a test under
``tests/hostile`` or ``tests/aio`` reads a private attribute of a :class:`HybridLoader`, a
:class:`PeerManager`, a :class:`Scheduler` or a :class:`Driver`: any ``<expr>._name`` (``<expr>``
not ``self`` or ``cls``) where ``_name`` is an attribute or method those classes keep privately.
Behaviour is observed through notifications, ``statistics()``, ``is_banned``, ``get_segment``,
``swarm_endpoint``, a peer manager's public methods, or tested on the sans-IO machines directly.

``ALLOWED`` lists the reads left, each with its reason; it may only shrink.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import p2ploader

PACKAGE = Path(p2ploader.__file__).parent
TESTS = Path(__file__).parent
SCANNED = ("hostile", "aio")

# (module under p2ploader/, class) whose private names tests must not read.
OBSERVED = (
    ("aio/loader.py", "HybridLoader"),
    ("aio/peers.py", "PeerManager"),
    ("core/scheduler.py", "Scheduler"),
    ("core/driver.py", "Driver"),
)

# (test file relative to tests/, private name) -> why the read is still there.
ALLOWED: dict[tuple[str, str], str] = {
    ("aio/test_peer_wiring.py", "_peers"): (
        "drives a PeerManager with fake links (no aiortc) and reaches a link's state; the wire "
        "protocol's own rules are tested on PeerProtocol, this is the aio wiring not yet observed "
        "through the manager's feed alone"
    ),
    ("aio/test_peer_wiring.py", "_link_message"): (
        "the fake link delivers messages through the manager's link callback, which aiortc calls "
        "in production; the manager has no public entry for a message"
    ),
    ("aio/test_peer_wiring.py", "_uplink_turn"): "holds the uplink turn to queue an upload behind it",
    ("aio/test_peers.py", "_peers"): "two real loaders' peer managers: reaches a link's state",
    ("aio/test_peers.py", "_feed"): "wraps the manager's feed to watch the events it passes on",
    ("aio/test_peers.py", "_upload_desk"): "reads the scheduler's upload turn while an upload waits",
    ("aio/test_peers.py", "_uplink_turn"): "holds the uplink turn to queue an upload behind it",
    ("aio/test_peers.py", "_upload_control"): "reads the shared delay controller of a seeder",
    ("aio/test_peers.py", "_stalled_bytes"): "reads the bytes kept from a stalled peer download",
    ("aio/test_peers.py", "_context"): "reads the policy context's view of a peer",
    ("aio/test_alternate_audio.py", "_scheduler"): "the audio companion's playhead (no public read)",
    ("aio/test_alternate_audio.py", "_position"): "the audio companion's playhead (no public read)",
    ("aio/test_alternate_audio.py", "_upload_control"): (
        "one delay controller shared by a loader and its companion (identity, no public read)"
    ),
    ("aio/test_decryption_swarm.py", "_scheduler"): "segments received from peers as cached (ciphertext)",
}


@functools.cache
def private_names() -> frozenset[str]:
    """Every ``self._name`` the observed classes use, and their ``_methods``."""
    names: set[str] = set()
    for module, cls in OBSERVED:
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        (found,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls]
        for node in ast.walk(found):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and _private(node.attr)
            ):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
                names.add(node.name)
    return frozenset(names)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def reads_in(tree: ast.AST, names: frozenset[str]) -> list[ast.Attribute]:
    """Reads of ``names`` in ``tree`` through anything but ``self`` or ``cls`` (a test's own class
    may keep private attributes of its own)."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in names
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]


@functools.cache
def private_reads(names: frozenset[str]) -> dict[tuple[str, str], list[str]]:
    """``(test file, name) -> ["line: source", ...]`` for every read of ``names`` in the scanned
    test folders (scanned once per run)."""
    reads: dict[tuple[str, str], list[str]] = {}
    for folder in SCANNED:
        for path in sorted((TESTS / folder).rglob("*.py")):
            for node in reads_in(ast.parse(path.read_text(encoding="utf-8")), names):
                key = (path.relative_to(TESTS).as_posix(), node.attr)
                reads.setdefault(key, []).append(f"{node.lineno}: {ast.unparse(node)}")
    return reads


def test_the_observed_classes_have_private_names_to_guard() -> None:
    names = private_names()
    assert {"_scheduler", "_peers", "_driver", "_downloads", "_upload_desk"} <= names


def test_no_test_reads_a_private_attribute_of_a_loader_manager_or_scheduler() -> None:
    reads = private_reads(private_names())
    unexpected = {key: where for key, where in reads.items() if key not in ALLOWED}
    assert not unexpected, "tests read loader internals (observe through the public API):\n" + "\n".join(
        f"  tests/{file} {name}: {', '.join(where)}" for (file, name), where in sorted(unexpected.items())
    )


def test_the_allow_list_holds_only_reads_that_still_exist() -> None:
    reads = private_reads(private_names())
    stale = [key for key in ALLOWED if key not in reads]
    assert not stale, f"remove these entries (the reads are gone): {stale}"
    assert all(reason for reason in ALLOWED.values())


def test_the_scan_sees_a_private_read() -> None:
    """A read through any expression is found; ``self._x`` in a test's own class is not."""
    source = (
        "def f(s):\n"
        "    return s.loader._scheduler._peers\n"
        "class C:\n"
        "    def g(self):\n"
        "        return self._peers\n"
    )
    found = reads_in(ast.parse(source), frozenset({"_scheduler", "_peers"}))
    assert sorted(ast.unparse(node) for node in found) == [
        "s.loader._scheduler",
        "s.loader._scheduler._peers",
    ]
