"""P2P Media Loader 2.x's config object read into a :class:`~p2ploader.config.LoaderConfig`.

A browser player configures P2P Media Loader 2.x (``p2p-media-loader-core`` 2.3.1, ``CoreConfig``)
with ``{"core": {...}}``: ``camelCase`` names, **time windows in seconds, timeouts in milliseconds
(the names ending in ``Ms``), storage in MiB**. :func:`config_from_p2pml2` reads that object (with or
without its ``core`` wrapper) and maps it onto the ``p2pml-2.2`` download policy, which reproduces
2.x's algorithm, and onto the loader's own fields. Every key falls under exactly one rule of
:data:`P2PML2_KEYS` (documented in docs/configuration.md):

* **mapped**: onto a ``LoaderConfig`` field or a ``p2pml-2.2`` policy setting, unit converted;
* **ignored**: accepted and type-checked, with no effect here (logged once at INFO when set);
* **refused**: JavaScript functions (no Python equivalent: a silently dropped validator would be a
  security hole), 1.0.x's removed cache settings, and values this loader cannot honour.

Unknown keys raise :class:`~p2ploader.errors.ConfigError` suggesting the closest 2.x name (or the
2.x spelling of a 0.6 name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from p2ploader.errors import ConfigError
from p2ploader.jsobject import same_value

if TYPE_CHECKING:
    from p2ploader.config import LoaderConfig

__all__ = ["P2PML2_KEYS", "P2PML2_POLICY", "config_from_p2pml2"]

logger = logging.getLogger(__name__)

P2PML2_POLICY: Final = "p2pml-2.2"
"""The download policy a 2.x config selects."""

_Rule = Literal["field", "policy", "ignored", "function", "removed", "zero-only"]
_Kind = Literal["int", "ms", "number", "bool", "trackers", "json", "str"]


@attrs.frozen
class P2PML2Key:
    """How one 2.x setting is read: ``rule`` and, for mapped settings, the ``target`` field or policy
    setting and the value ``kind`` (``"ms"``: milliseconds converted to seconds)."""

    name: str
    rule: _Rule
    target: str = ""
    kind: _Kind = "number"
    common: bool = False  # CommonCoreConfig (not allowed under mainStream/secondaryStream)
    inverted: bool = False  # bool stored negated (isP2PDisabled -> use_p2p)
    note: str = ""


P2PML2_KEYS: Final[Mapping[str, P2PML2Key]] = {
    k.name: k
    for k in (
        P2PML2Key("isP2PUploadDisabled", "field", "consume_only", "bool"),
        P2PML2Key("isP2PDisabled", "field", "use_p2p", "bool", inverted=True),
        P2PML2Key("simultaneousHttpDownloads", "field", "simultaneous_http_downloads", "int"),
        P2PML2Key("simultaneousP2PDownloads", "field", "simultaneous_p2p_downloads", "int"),
        P2PML2Key("highDemandTimeWindow", "policy", "high_demand_time_window", "number"),
        P2PML2Key("httpDownloadTimeWindow", "policy", "http_download_time_window", "number"),
        P2PML2Key("p2pDownloadTimeWindow", "policy", "p2p_download_time_window", "number"),
        P2PML2Key("httpErrorRetries", "policy", "http_error_retries", "int"),
        P2PML2Key("webRtcMaxMessageSize", "field", "web_rtc_max_message_size", "int"),
        P2PML2Key("p2pNotReceivingBytesTimeoutMs", "field", "p2p_stall_timeout", "ms"),
        P2PML2Key("p2pInactiveLoaderDestroyTimeoutMs", "field", "rendition_linger", "ms"),
        P2PML2Key("httpNotReceivingBytesTimeoutMs", "field", "http_read_timeout", "ms"),
        P2PML2Key("announceTrackers", "field", "tracker_announce", "trackers"),
        P2PML2Key("rtcConfig", "field", "rtc_config", "json"),
        P2PML2Key("swarmId", "field", "swarm_id", "str"),
        P2PML2Key(
            "httpDownloadInitialTimeoutMs",
            "zero-only",
            kind="ms",
            note="the p2pml-2.2 policy has no initial HTTP hold-back; only 0 (2.x's default) is accepted",
        ),
        P2PML2Key(
            "p2pErrorRetries",
            "ignored",
            kind="int",
            note="a peer that stalls or misbehaves is handled by this loader's strikes and bans",
        ),
        P2PML2Key(
            "trackerClientVersionPrefix",
            "ignored",
            kind="str",
            note="this loader announces its own peer-id prefix; browser peers never read it",
        ),
        P2PML2Key(
            "segmentMemoryStorageLimit",
            "ignored",
            common=True,
            note="a browser memory budget in MiB; this loader's cache is bounded by count and age",
        ),
        P2PML2Key("validateP2PSegment", "function", note="use LoaderConfig.segment_validator"),
        P2PML2Key("validateHTTPSegment", "function", note="use LoaderConfig.segment_validator"),
        P2PML2Key("httpRequestSetup", "function", note="set HTTP options on LoaderConfig instead"),
        P2PML2Key("customSegmentStorageFactory", "function", common=True),
        P2PML2Key(
            "cachedSegmentExpiration",
            "removed",
            note="2.0 removed it (1.0.x only); the 0.6 spelling is loader.cachedSegmentExpiration (ms)",
        ),
        P2PML2Key(
            "cachedSegmentsCount",
            "removed",
            note="2.0 removed it (1.0.x only); the 0.6 spelling is loader.cachedSegmentsCount",
        ),
    )
}

_STREAM_BLOCKS: Final = ("mainStream", "secondaryStream")

# 0.6 names a 2.x config may carry by mistake, with their 2.x spelling.
_FROM_06: Final[Mapping[str, str]] = {
    "trackerAnnounce": "announceTrackers",
    "useP2P": "isP2PDisabled",
    "consumeOnly": "isP2PUploadDisabled",
    "segmentValidator": "validateP2PSegment",
    "xhrSetup": "httpRequestSetup",
    "p2pSegmentDownloadTimeout": "p2pNotReceivingBytesTimeoutMs",
}


def config_from_p2pml2(mapping: Mapping[str, Any], base: LoaderConfig | None = None) -> LoaderConfig:
    """``base`` (default ``LoaderConfig()``) refined by the 2.x config ``mapping``, with the
    ``p2pml-2.2`` policy selected. See :meth:`LoaderConfig.from_p2pml2`."""
    from p2ploader.config import LoaderConfig

    core = _unwrap(mapping)
    common, main, secondary = _split_streams(core)
    main_values = {**common, **main}
    secondary_values = {**common, **secondary}
    fields: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    ignored: list[str] = []
    for key, raw in main_values.items():
        spec = P2PML2_KEYS[key]
        value = _read(spec, f"core.{key}", raw)
        if spec.rule == "ignored":
            ignored.append(key)
        elif spec.rule == "policy":
            policy[spec.target] = value
        elif spec.rule == "field":
            fields[spec.target] = (not value) if spec.inverted else value

    # One config serves every stream this loader loads: secondaryStream is checked like the rest
    # (names, types, ranges) but its differences from the main stream are not applied.
    differing = sorted(
        key
        for key in secondary_values.keys() | main_values.keys()
        if not same_value(main_values.get(key), secondary_values.get(key))
    )
    for key in differing:
        if key in secondary_values:
            _read(P2PML2_KEYS[key], f"core.secondaryStream.{key}", secondary_values[key])
    if differing:
        logger.info(
            "P2P Media Loader 2.x secondaryStream settings not applied (one config for every stream): %s",
            ", ".join(differing),
        )

    if ignored:
        logger.info(
            "P2P Media Loader 2.x settings with no effect here: %s (see docs/configuration.md)",
            ", ".join(ignored),
        )
    config = base if base is not None else LoaderConfig()
    settings = dict(config.policy_settings)
    if policy:
        settings[P2PML2_POLICY] = {**config.policy_settings.get(P2PML2_POLICY, {}), **policy}
    try:
        return config.evolve(policy=P2PML2_POLICY, policy_settings=settings, **fields)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a field's own validator, naming the snake_case field
        raise ConfigError(f"P2P Media Loader 2.x config: {exc}") from exc


def _unwrap(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``CoreConfig`` inside ``{"core": {...}}`` (or ``mapping`` itself when not wrapped)."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"a P2P Media Loader 2.x config must be a mapping, got {type(mapping).__name__}")
    if "core" not in mapping:
        return mapping
    others = sorted(str(k) for k in mapping if k != "core")
    if others:
        raise ConfigError(
            f"a P2P Media Loader 2.x config has only a 'core' block; got also {', '.join(others)}"
            " (0.6 settings and 2.x settings cannot be mixed)",
            key=others[0],
        )
    core = mapping["core"]
    if core is None:
        return {}
    if not isinstance(core, Mapping):
        raise ConfigError(
            f"core must be an object (mapping) of settings, got {type(core).__name__}", key="core"
        )
    return core


def _split_streams(
    core: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(settings for both streams, mainStream's, secondaryStream's), keys checked, ``None`` dropped."""
    common = _checked(core, "core", allow_common=True)
    blocks: list[dict[str, Any]] = []
    for name in _STREAM_BLOCKS:
        block = core.get(name)
        if block is None:
            blocks.append({})
            continue
        if not isinstance(block, Mapping):
            raise ConfigError(
                f"core.{name} must be an object (mapping) of settings, got {type(block).__name__}", key=name
            )
        blocks.append(_checked(block, f"core.{name}", allow_common=False))
    return common, blocks[0], blocks[1]


def _checked(block: Mapping[str, Any], where: str, *, allow_common: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in block.items():
        if not isinstance(key, str):
            raise ConfigError(f"setting names must be strings, got {key!r}")
        if allow_common and key in _STREAM_BLOCKS:
            continue
        spec = P2PML2_KEYS.get(key)
        if spec is None:
            raise _unknown(key, f"{where}.{key}", allow_common=allow_common)
        if spec.common and not allow_common:
            raise ConfigError(
                f"{where}.{key} is a setting common to all streams; give it directly under core", key=key
            )
        if value is not None:  # JavaScript null / undefined: not set
            out[key] = value
    return out


def _unknown(key: str, where: str, *, allow_common: bool) -> ConfigError:
    from p2ploader.config import _closest

    if key in _FROM_06:
        suggestion: str | None = _FROM_06[key]
        message = f"{where!r} is P2P Media Loader 0.6's name; 2.x calls it {suggestion!r}"
        if key == "useP2P":
            message += " (with the opposite meaning)"
        return ConfigError(message, key=key, suggestion=suggestion)
    candidates = [name for name, spec in P2PML2_KEYS.items() if allow_common or not spec.common] + (
        list(_STREAM_BLOCKS) if allow_common else []
    )
    suggestion = _closest(key, candidates)
    message = f"unknown P2P Media Loader 2.x setting {where!r}"
    if suggestion is not None:
        message += f"; did you mean {suggestion!r}?"
    else:
        message += " (see docs/configuration.md for the 2.x names)"
    return ConfigError(message, key=key, suggestion=suggestion)


def _convert(spec: P2PML2Key, where: str, raw: object) -> object:
    """Type-check ``raw`` and convert it to the target's unit; a fault raises naming ``where``."""
    from p2ploader.config import _FIELD_FACTS, _convert_faq_value, _FaqKey

    value = _convert_faq_value(_FaqKey(where, spec.target or "-", spec.kind), where, raw)
    if spec.rule == "field":
        facts = _FIELD_FACTS[spec.target]
        reason = facts.rule((not value) if spec.inverted else value)
        if reason is not None:
            unit = " (milliseconds)" if facts.unit == "seconds" and spec.kind == "ms" else ""
            raise ConfigError(f"{where} {reason}, got {raw!r}{unit}", key=spec.name)
    elif spec.rule == "ignored" and spec.kind == "number" and isinstance(value, float) and value < 0:
        raise ConfigError(f"{where} must be >= 0, got {raw!r}", key=spec.name)
    return value


def _read(spec: P2PML2Key, where: str, raw: object) -> object:
    """The value of one present 2.x setting in its target's unit, or :class:`ConfigError` naming
    ``where`` when the setting is refused or its value is wrong."""
    if spec.rule == "function":
        hint = f" ({spec.note})" if spec.note else ""
        raise ConfigError(
            f"{where} is a JavaScript function with no Python equivalent; remove it{hint}", key=spec.name
        )
    if spec.rule == "removed":
        raise ConfigError(f"{where} is not a P2P Media Loader 2.x setting: {spec.note}", key=spec.name)
    value = _convert(spec, where, raw)
    if spec.rule == "zero-only" and value != 0:
        raise ConfigError(f"{where} must be 0: {spec.note}, got {raw!r}", key=spec.name)
    if spec.rule == "policy":
        from p2ploader.core.policies.p2pml22 import P2PML22Settings

        one: dict[str, Any] = {spec.target: value}
        try:
            P2PML22Settings(**one)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} is out of range, got {raw!r}: {exc}", key=spec.name) from exc
    return value
