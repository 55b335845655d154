"""Optional dependencies: which extra brings which modules, and the check that names the one to
install when a feature needs it.

``pip install p2ploader`` installs what a player embedding the loader needs (httpx, aiortc, m3u8,
anyio, attrs, websockets, cryptography). The rest is in extras, declared in ``pyproject.toml``:

* ``cli``: rich, for the terminal views of ``p2ploader view``, ``play``, ``swarm`` and ``demo``;
* ``plot``: matplotlib, for the PNG plots of ``swarm --plot``, ``demo`` and ``simulate --sweep``;
* ``proxy``: starlette and uvicorn, for :mod:`p2ploader.proxy` and ``p2ploader proxy``;
* ``cluster``: Ray, for ``p2ploader swarm --cluster`` (:mod:`p2ploader.app.cluster`);
* ``all``: the four.

The check looks the modules up without importing them (:func:`importlib.util.find_spec`), so it
costs a few file-system lookups and never runs a missing package's import side effects.
This module imports nothing but the standard library and :mod:`p2ploader.errors`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from types import MappingProxyType

from p2ploader.errors import MissingExtraError, UsageError

__all__ = ["EXTRAS", "missing_modules", "require_extras"]

#: Extra name -> the top-level modules it provides. Kept equal to pyproject.toml's
#: ``[project.optional-dependencies]`` by tests/test_install.py.
EXTRAS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cli": ("rich",),
        "plot": ("matplotlib",),
        "proxy": ("starlette", "uvicorn"),
        "cluster": ("ray",),
    }
)


def missing_modules(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` that cannot be imported here (empty when the extra is installed)."""
    try:
        modules = EXTRAS[extra]
    except KeyError:
        raise UsageError(f"unknown extra {extra!r} (known: {', '.join(sorted(EXTRAS))})") from None
    return tuple(name for name in modules if importlib.util.find_spec(name) is None)


def require_extras(feature: str, *extras: str) -> None:
    """Raise :class:`~p2ploader.errors.MissingExtraError` naming every extra of ``extras`` that is
    not installed; ``feature`` is what needs them, as the message should name it."""
    lacking: list[str] = []
    modules: list[str] = []
    for extra in dict.fromkeys(extras):
        missing = missing_modules(extra)
        if missing:
            lacking.append(extra)
            modules.extend(missing)
    if lacking:
        raise MissingExtraError(feature, tuple(lacking), tuple(modules))
