"""``p2ploader.__all__`` is the public API: complete, sorted, and enough to write a download policy.

As httpx's test of its ``__all__``: every public name of the package is listed, and the list is in
the order ruff's RUF022 keeps it (constants, then classes, then the rest, each alphabetical).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import random
import re
from pathlib import Path
from types import ModuleType

import pytest

import p2ploader
import p2ploader.errors
from p2ploader import (
    DownloadPolicy,
    LoaderConfig,
    PolicyError,
    Scheduler,
    SchedulingContext,
    UsageError,
    register_policy,
)
from p2ploader.core import events as ev
from p2ploader.core.policies import base as policy_module
from p2ploader.core.policies.live import LivePolicySettings
from p2ploader.core.segments import Segment, SegmentId

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Errors that never reach a caller of the public API (the scheduler, the tracker client and the
# tracker server handle them inside).
# Errors that never reach a caller of the loader: turned into a disconnect, a tracker failure, or
# (the local test origin's LL-HLS errors) into an HTTP answer.
INTERNAL_ERRORS = {
    "DirectiveError",
    "FragmentedMp4Error",
    "PeerProtocolError",
    "TrackerMessageError",
    "TrackerRequestError",
    "TrackerWireError",
}


def _ruff_order(name: str) -> tuple[int, str]:
    # RUF022's "isort-style" sort: SCREAMING_CASE, then CamelCase, then anything else.
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_lists_every_public_name_and_is_sorted() -> None:
    public = {
        name
        for name, value in vars(p2ploader).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    # The asyncio names are loaded on first use (module __getattr__).
    lazy = set(p2ploader._LAZY)
    assert set(p2ploader.__all__) == public | lazy | {"__version__"}
    assert p2ploader.__all__ == sorted(p2ploader.__all__, key=_ruff_order)
    assert len(set(p2ploader.__all__)) == len(p2ploader.__all__)


def test_every_error_a_caller_can_catch_is_exported() -> None:
    for name in p2ploader.errors.__all__:
        if name in INTERNAL_ERRORS:
            continue
        assert name in p2ploader.__all__, name
        assert getattr(p2ploader, name) is getattr(p2ploader.errors, name)


def test_every_error_of_the_library_lives_in_the_one_error_tree() -> None:
    # One module holds the library's exceptions (the application, p2ploader.app, keeps its own).
    elsewhere = []
    for module_info in pkgutil.walk_packages(p2ploader.__path__, "p2ploader."):
        if module_info.name.startswith("p2ploader.app"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, p2ploader.errors.P2PLoaderError)
                and value.__module__ == module.__name__ != "p2ploader.errors"
            ):
                elsewhere.append(f"{module.__name__}.{name}")
    assert elsewhere == []
    for name in p2ploader.errors.__all__:
        assert issubclass(getattr(p2ploader.errors, name), p2ploader.errors.P2PLoaderError), name


def _named_in_annotations(*objects: object) -> set[str]:
    """Identifiers in the (string) annotations of the public members of ``objects``."""
    names: set[str] = set()
    for obj in objects:
        for member_name, member in vars(obj).items():
            if member_name.startswith("_") and member_name != "__init__":
                continue
            function = member.fget if isinstance(member, property) else member
            function = getattr(function, "__func__", function)
            if not callable(function):
                continue
            for annotation in getattr(function, "__annotations__", {}).values():
                names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(annotation)))
    return names


def test_a_policy_author_finds_everything_in_the_package() -> None:
    # Every p2ploader type in the signatures a policy implements or calls...
    namespace = {**vars(policy_module), "LoaderConfig": LoaderConfig}
    used = {
        name
        for name in _named_in_annotations(DownloadPolicy, SchedulingContext)
        if getattr(namespace.get(name), "__module__", "").startswith("p2ploader")
    }
    assert {"SchedulingContext", "Segment", "SegmentId", "QueueEntry", "P2PProgress", "LoaderConfig"} <= used
    # ... and the registry, the settings helper and the errors of docs/scheduler.md's "Writing a policy".
    needed = used | {
        "DownloadPolicy",
        "register_policy",
        "available_policies",
        "settings_from_mapping",
        "Scheduler",
        "PolicyError",
        "ConfigError",
    }
    for name in needed:
        assert name in p2ploader.__all__, name
        assert getattr(p2ploader, name) is (namespace.get(name) or getattr(p2ploader, name))


def test_the_policy_docs_import_only_exported_names() -> None:
    text = (DOCS / "scheduler.md").read_text(encoding="utf-8")
    assert "`p2ploader.DownloadPolicy`" in text
    for name in re.findall(r"`p2ploader\.([A-Za-z_]+)`", text):
        assert name in p2ploader.__all__, name


# --------------------------------------------------------------------------------------------------
# PolicyError instead of bare RuntimeError / ValueError


class _Greedy(DownloadPolicy):
    """Starts HTTP downloads for the whole queue, past the simultaneous limit."""

    name = "test-greedy-policy"

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        for entry in ctx.queue:
            if not ctx.is_http_loading(entry.id) and not ctx.is_cached(entry.id):
                ctx.start_http(entry.id, now=now, continue_p2p=False)


def test_a_policy_breaking_the_schedulers_rules_raises_policy_error() -> None:
    config = LoaderConfig(simultaneous_http_downloads=1)
    scheduler = Scheduler(config, rng=random.Random(1), policy=_Greedy(config))
    segments = [
        Segment(id=SegmentId("v", n), url=f"http://o/{n}.ts", duration=2.0, start=2.0 * n) for n in range(3)
    ]
    scheduler.handle_event(ev.PlaylistUpdated(segments=tuple(segments)), now=0.0)
    with pytest.raises(PolicyError, match="exceeded simultaneous_http_downloads") as raised:
        scheduler.handle_event(ev.SegmentRequested(segment_id=segments[0].id), now=0.0)
    assert raised.value.policy == "test-greedy-policy"
    assert isinstance(raised.value, UsageError)


def test_registering_a_second_policy_under_a_taken_name_is_a_policy_error() -> None:
    class Twin(DownloadPolicy):
        name = "p2pml-0.6"

        def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
            pass

    p2ploader.available_policies()  # the built-ins are registered
    with pytest.raises(PolicyError, match="already registered") as raised:
        register_policy(Twin)
    assert raised.value.policy == "p2pml-0.6"


def test_registering_something_that_is_not_a_policy_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="takes a DownloadPolicy subclass"):
        register_policy(dict)  # type: ignore[arg-type]

    class Nameless(DownloadPolicy):
        def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
            pass

    with pytest.raises(PolicyError, match="needs a non-empty str name"):
        register_policy(Nameless)


def test_bad_live_policy_settings_are_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="pace_patience") as raised:
        LivePolicySettings(pace_patience=-1.0)
    assert raised.value.policy == "p2ploader-live"
