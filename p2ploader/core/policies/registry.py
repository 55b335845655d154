"""The name registry of download policies: a config, a scenario file or the command line picks a
policy by its name.

This module knows no concrete policy: each registers itself with :func:`register_policy` when its
module is imported, and the package (``p2ploader.core.policies``) imports the built-in ones, so they
are registered before any lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from p2ploader.core.policies.base import DownloadPolicy, unknown_name_error
from p2ploader.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["available_policies", "create_policy", "register_policy"]


_REGISTRY: dict[str, type[DownloadPolicy]] = {}


def register_policy(cls: type[DownloadPolicy]) -> type[DownloadPolicy]:
    """Class decorator: make a policy available by its ``name``. Raises :class:`PolicyError` when
    ``cls`` is not a :class:`DownloadPolicy` subclass with a non-empty ``name``, or another class
    holds that name already."""
    if not (isinstance(cls, type) and issubclass(cls, DownloadPolicy)):
        raise PolicyError(f"register_policy takes a DownloadPolicy subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PolicyError(f"download policy {cls.__qualname__} needs a non-empty str name, got {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise PolicyError(f"a download policy named {name!r} is already registered", policy=name)
    _REGISTRY[cls.name] = cls
    return cls


def available_policies() -> list[str]:
    """Names of the registered policies, sorted."""
    return sorted(_REGISTRY)


def create_policy(name: str, config: LoaderConfig) -> DownloadPolicy:
    """Instantiate the policy registered as ``name`` with its settings from
    ``config.policy_settings``. Every entry there is checked too, for whichever policy it names, so
    a comparison of several policies fails at once on any bad setting. An unknown name raises
    :class:`ConfigError` suggesting the closest one."""
    for other, values in config.policy_settings.items():
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"policy_settings[{other!r}] must be a mapping of setting names to values, got {values!r}",
                key="policy_settings",
            )
        if other != name:
            _registered(other, key="policy_settings").from_config(config)
    return _registered(name, key="policy").from_config(config)


def _registered(name: str, *, key: str) -> type[DownloadPolicy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name_error(
            f"unknown download policy {name!r}", name, sorted(_REGISTRY), listing="available", key=key
        ) from None
