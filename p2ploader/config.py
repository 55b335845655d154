"""Loader settings: :class:`LoaderConfig`, its P2P Media Loader (FAQ) spelling, and named presets.

Unit convention
===============

* **In Python, every time is in seconds** (a ``float``) and every size is in bytes (an ``int``).
  Field names are ``snake_case``: ``LoaderConfig(cached_segment_expiration=300.0)``.
* **In the FAQ spelling, every time is in milliseconds** and names are ``camelCase``, exactly as
  P2P Media Loader 0.6 and its FAQ write them: ``{"loader": {"cachedSegmentExpiration": 300000}}``.
  :meth:`LoaderConfig.from_faq`, :meth:`LoaderConfig.from_faq_text` and :meth:`LoaderConfig.to_faq`
  are the only places that speak this spelling, and they speak nothing else: ``from_faq`` rejects
  ``snake_case`` names (and suggests the ``camelCase`` one), so a value can never be read in the
  wrong unit by accident.

Defaults are P2P Media Loader 0.6.2's ``defaultSettings`` (``hybrid-loader.ts``) and the hls.js
glue's ``segments`` defaults, converted to seconds. The meaning of every setting is the one our
scheduler implements, modelled on 0.6.2's ``HybridLoader``; ``docs/configuration.md`` has the table.

A few settings are ours, not P2P Media Loader's: ``http_connect_timeout``, ``http_read_timeout``,
``http_retries``, ``http_retry_backoff``, ``http_retry_jitter``, ``http_headers``, ``http_cookies``,
``http_headers_hosts`` and ``user_agent`` tune our HTTP executor. They have FAQ-style names too
(``httpConnectTimeout`` … in milliseconds) so that :meth:`LoaderConfig.to_faq` round-trips, but a
browser P2P Media Loader ignores them.

Every value is validated on construction (also by :meth:`LoaderConfig.evolve`); a bad value raises
:class:`~p2ploader.errors.ConfigError` whose ``key`` names the setting as the caller spelled it.

Adding a setting is adding one field: its attribute docstring (units first: the configuration
reference page is generated from it) and ``metadata=_facts(rule, faqName, kind, unit=...)``. The
validator, the FAQ spelling (read and written) and the reference page's FAQ column all read those
facts; nothing else lists the settings. The FAQ's text form is parsed by :mod:`p2ploader.jsobject`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

import attrs

from p2ploader.core.hostscope import origin_problem
from p2ploader.core.peer_attributes import CLIENT_KINDS, DEVICES, OPERATING_SYSTEMS
from p2ploader.core.segments import Segment
from p2ploader.errors import ConfigError
from p2ploader.jsobject import parse_js_object, same_value

__all__ = [
    "DEFAULT_RTC_CONFIG",
    "DEFAULT_TRACKER_ANNOUNCE",
    "FORBIDDEN_HTTP_HEADERS",
    "PRESETS",
    "LoaderConfig",
    "SegmentValidator",
]

SegmentValidator: TypeAlias = Callable[[Segment, bytes, str, str | None], bool | Awaitable[bool]]
"""``validator(segment, data, method, peer_id) -> bool`` (or an awaitable of one).

``method`` is ``"http"`` or ``"p2p"``; ``peer_id`` is the sending peer's id for ``"p2p"`` and
``None`` for ``"http"``. A false result rejects the data: the download counts as failed.
"""

DEFAULT_TRACKER_ANNOUNCE: Final[tuple[str, ...]] = (
    "wss://tracker.novage.com.ua",
    "wss://tracker.openwebtorrent.com",
)
"""The WebTorrent trackers P2P Media Loader 0.6.2 announces to by default (public: test use only)."""


# --------------------------------------------------------------------------------------------------
# Validation rules, shared by LoaderConfig (snake_case, seconds) and from_faq (camelCase, ms).
#
# A rule takes the (already unit-converted) value and returns None when it is fine, or a reason such
# as "must be >= 1". Each front end turns the reason into a message naming the key the caller used.
# --------------------------------------------------------------------------------------------------

_Rule: TypeAlias = Callable[[object], str | None]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_rule(lo: int, hi: int | None = None) -> _Rule:
    def rule(value: object) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be an integer"
        if hi is not None and not lo <= value <= hi:
            return f"must be in {lo}..{hi}"
        if value < lo:
            return f"must be >= {lo}"
        return None

    return rule


def _number_rule(lo: float, *, exclusive: bool = False, hi: float | None = None) -> _Rule:
    def rule(value: object) -> str | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return "must be a number"
        if not math.isfinite(value):
            return "must be finite"
        if hi is not None and not lo <= value <= hi:
            return f"must be in [{lo:g}, {hi:g}]"
        if exclusive and value <= lo:
            return f"must be > {lo:g}"
        if value < lo:
            return f"must be >= {lo:g}"
        return None

    return rule


def _optional_positive_number_rule(value: object) -> str | None:
    if value is None:
        return None
    return _number_rule(0, exclusive=True)(value)


def _delay_target_rule(value: object) -> str | None:
    reason = _number_rule(0)(value)
    if reason is None and isinstance(value, int | float) and value > 1:
        return "must be <= 1 (0 turns it off; a queue of seconds is what it prevents)"
    return reason


def _bool_rule(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _auto_bool_rule(value: object) -> str | None:
    return None if value is None or isinstance(value, bool) else "must be None (automatic), True or False"


_TRACKER_URL = re.compile(r"wss?://[^\s/?#]+\S*", re.IGNORECASE)


def _trackers_rule(value: object) -> str | None:
    if not isinstance(value, tuple) or not all(isinstance(url, str) for url in value):
        return "must be a tuple of URL strings"
    if not all(_TRACKER_URL.fullmatch(url) for url in value):
        return "must contain only ws:// or wss:// URLs"
    return None


def _hosts_rule(value: object) -> str | None:
    if not isinstance(value, tuple) or not all(isinstance(entry, str) for entry in value):
        return "must be a tuple of strings ('*' or origins such as 'https://cdn.example.com')"
    for entry in value:
        problem = origin_problem(entry)
        if problem is not None:
            return f"entry {entry!r} {problem}"
    return None


def _mapping_rule(value: object) -> str | None:
    return None if isinstance(value, MappingProxyType) else "must be a mapping"


def _validator_rule(value: object) -> str | None:
    return None if value is None or callable(value) else "must be a callable or None"


def _swarm_id_rule(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string or None"
    return None if value else "must not be empty (use None for the default swarm id)"


def _policy_rule(value: object) -> str | None:
    # Names are checked against the registry when the scheduler is built (plug-ins may register later).
    return None if isinstance(value, str) and value else "must be a download policy name"


def _regex_rule(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        return "must be a non-empty regular expression string or None"
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    return None


def _topology_rule(value: object) -> str | None:
    return None if value in ("mesh", "host-client") else 'must be "mesh" or "host-client"'


def _topology_rules_rule(value: object) -> str | None:
    # Names are checked against the registry when the loader starts (apps may register rule sets).
    return None if isinstance(value, str) and value else "must be a topology rule set name"


def _attribute_rule(choices: Mapping[str, str], *, optional: bool = False) -> _Rule:
    def rule(value: object) -> str | None:
        if value is None and optional:
            return None
        return None if value in choices else f"must be one of {', '.join(sorted(choices))}"

    return rule


def _user_agent_rule(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or not re.fullmatch(r"[\t\x20-\x7e]+", value):
        return "must be None or a non-empty string of printable ASCII without CR or LF"
    return None


# --------------------------------------------------------------------------------------------------
# Facts per setting: each field of LoaderConfig carries, in its attrs ``metadata``, the rule its
# value must pass, its unit and its FAQ-style name and kind. The tables the FAQ spelling and the
# validator use (_FAQ_KEYS, _SECONDS_FIELDS, _FLOAT_FIELDS) are derived from the fields, so adding
# a setting is adding one field.
# --------------------------------------------------------------------------------------------------

# "seconds": a time, stored as float seconds, written in milliseconds in the FAQ spelling;
# "probability": 0 to 1, stored as float.
_Unit: TypeAlias = Literal["seconds", "probability"]
_Kind: TypeAlias = Literal["int", "ms", "number", "bool", "trackers", "strings", "json", "callable", "str"]
_FACTS: Final = "p2ploader"  # the key of a field's facts in its attrs metadata


@attrs.frozen(kw_only=True)
class _Facts:
    """What the code knows about one setting besides its type and default."""

    rule: _Rule
    """Checks a value: ``None`` when it is valid, else the reason ("must be >= 1")."""
    faq: str
    """The FAQ-style name (camelCase), the one :meth:`LoaderConfig.to_faq` writes."""
    kind: _Kind
    """The shape of the value in the FAQ spelling; a ``unit="seconds"`` setting is read and written
    in milliseconds (kind ``"ms"`` in :data:`_FAQ_KEYS`)."""
    unit: _Unit | None = None
    """``"seconds"`` or ``"probability"``: the value is stored as a float; ``None``: as given."""
    block: Literal["segments", "loader"] = "loader"
    """The FAQ block ``to_faq`` writes the setting in (both are read)."""
    faq_aliases: tuple[str, ...] = ()
    """Other FAQ names read for the setting and never written."""


def _facts(
    rule: _Rule,
    faq: str,
    kind: _Kind,
    *,
    unit: _Unit | None = None,
    block: Literal["segments", "loader"] = "loader",
    faq_aliases: tuple[str, ...] = (),
) -> dict[str, _Facts]:
    """The ``metadata`` of a LoaderConfig field: its facts under the package's key."""
    facts = _Facts(rule=rule, faq=faq, kind=kind, unit=unit, block=block, faq_aliases=faq_aliases)
    return {_FACTS: facts}


def _facts_of(attribute: attrs.Attribute[Any]) -> _Facts:
    facts: _Facts = attribute.metadata[_FACTS]
    return facts


def _validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: apply the field's rule, raise ConfigError naming the field."""
    facts = _facts_of(attribute)
    reason = facts.rule(value)
    if reason is not None:
        unit = " (seconds)" if facts.unit == "seconds" and _is_number(value) else ""
        raise ConfigError(f"{attribute.name} {reason}, got {value!r}{unit}", key=attribute.name)


# --------------------------------------------------------------------------------------------------
# rtc_config and policy_settings: stored deep-frozen (dicts -> MappingProxyType, lists -> tuples)
# so a shared config cannot be changed behind the scheduler's back.
# --------------------------------------------------------------------------------------------------


def _freeze_json(value: object, where: str, key: str) -> object:
    """Deep-copy a JSON-like value into read-only containers, or raise ConfigError naming ``key``."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}", key=key)
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, object] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"keys of {where} must be strings, got {k!r}", key=key)
            frozen[k] = _freeze_json(v, f"{where}[{k!r}]", key)
        return MappingProxyType(frozen)
    if isinstance(value, list | tuple):
        return tuple(_freeze_json(v, f"{where}[{i}]", key) for i, v in enumerate(value))
    raise ConfigError(
        f"{where} must be JSON-like (str, number, bool, None, list, mapping), got {value!r}",
        key=key,
    )


def _freeze_mapping(value: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {value!r}", key=key)
    frozen = _freeze_json(value, key, key)
    assert isinstance(frozen, MappingProxyType)
    return frozen


def _to_rtc_config(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """attrs converter for ``rtc_config``."""
    return _freeze_mapping(value, "rtc_config")


def _to_policy_settings(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """attrs converter for ``policy_settings``."""
    return _freeze_mapping(value, "policy_settings")


def _thaw_json(value: object) -> object:
    """Inverse of :func:`_freeze_json`: plain, JSON-serialisable dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw_json(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# http_headers, http_cookies and user_agent: what the loader adds to its own HTTP requests (playlists,
# segments, keys, init sections, integrity spot checks). Checked here so that a bad value is a
# ConfigError when the config is built, not a malformed request (or a header injection) later.
# --------------------------------------------------------------------------------------------------

#: RFC 9110 ``token``: the characters a header or cookie name may have.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Header value: visible ASCII, space and tab (RFC 9110 ``field-value`` without obs-text); no CR/LF.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
#: RFC 6265 ``cookie-value`` octets: visible ASCII but for ``"`` ``,`` ``;`` and ``\``.
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")

#: Headers ``http_headers`` may not set (compared case-insensitively): hop-by-hop headers (RFC 9110
#: 7.6.1), which belong to one connection and which the HTTP client manages; those the loader sets
#: per request (``Range``, ``If-Range``, ``Accept-Encoding``), or that describe the request itself
#: (``Host``, ``Content-Length``); and ``Cookie`` and ``User-Agent``, which have their own settings.
FORBIDDEN_HTTP_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "range",
        "if-range",
        "accept-encoding",
        "cookie",
        "user-agent",
    }
)


def _to_http_pairs(value: Mapping[str, str], key: str, what: str) -> Mapping[str, str]:
    """Check a name -> value mapping of strings and store a read-only copy, or raise naming ``key``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping of {what} names to values, got {value!r}", key=key)
    frozen: dict[str, str] = {}
    seen: set[str] = set()
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigError(
                f"{key}: {what} name {name!r} is not a valid token (letters, digits and !#$%&'*+-.^_`|~)",
                key=key,
            )
        if not isinstance(text, str):
            raise ConfigError(f"{key}[{name!r}] must be a string, got {text!r}", key=key)
        if name.lower() in seen:
            raise ConfigError(f"{key}: {what} {name!r} is given twice (names are case-insensitive)", key=key)
        seen.add(name.lower())
        frozen[name] = text
    return MappingProxyType(frozen)


def _to_http_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    """attrs converter for ``http_headers``: checked, read-only."""
    headers = _to_http_pairs(value, "http_headers", "header")
    for name, text in headers.items():
        lowered = name.lower()
        if lowered in FORBIDDEN_HTTP_HEADERS:
            if lowered == "cookie":
                why = "use http_cookies"
            elif lowered == "user-agent":
                why = "use user_agent"
            else:
                why = "the HTTP client or the loader sets it"
            raise ConfigError(f"http_headers may not set {name!r} ({why})", key="http_headers")
        if not _HEADER_VALUE.fullmatch(text):
            raise ConfigError(
                f"http_headers[{name!r}] must be printable ASCII without CR or LF, got {text!r}",
                key="http_headers",
            )
    return headers


def _to_http_cookies(value: Mapping[str, str]) -> Mapping[str, str]:
    """attrs converter for ``http_cookies``: checked, read-only."""
    cookies = _to_http_pairs(value, "http_cookies", "cookie")
    for name, text in cookies.items():
        if not _COOKIE_VALUE.fullmatch(text):
            raise ConfigError(
                f"http_cookies[{name!r}] may not contain spaces, control characters, "
                f"non-ASCII, a double quote, a comma, a semicolon or a backslash, got {text!r}",
                key="http_cookies",
            )
    return cookies


DEFAULT_RTC_CONFIG: Final[Mapping[str, Any]] = _freeze_mapping(
    {
        "iceServers": [
            {"urls": "stun:stun.l.google.com:19302"},
            {"urls": "stun:global.stun.twilio.com:3478?transport=udp"},
        ],
        "sdpSemantics": "unified-plan",
    },
    "rtc_config",
)
"""The ``rtcConfig`` of the published P2P Media Loader 0.6.2 bundle (simple-peer's default), read-only."""


def _one_or_many(value: str | Sequence[str], *, key: str, item: str) -> tuple[str, ...]:
    """The one conversion of the settings that take a list of strings or one string: one string is
    stored as a 1-tuple, a list or tuple as a tuple; anything else is a
    :class:`~p2ploader.errors.ConfigError` naming ``key`` and what each entry is (``item``, e.g.
    ``"URL string"``). The entries themselves are the validator's business."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    raise ConfigError(f"{key} must be a {item} or a list/tuple of {item}s, got {value!r}", key=key)


# One named converter per field, each a call of _one_or_many: mypy's attrs plugin types a field's
# __init__ parameter from a named function only (a converter made by a factory, or a lambda, would
# leave it untyped).


def _to_trackers(value: str | Sequence[str]) -> tuple[str, ...]:
    """attrs converter for ``tracker_announce``."""
    return _one_or_many(value, key="tracker_announce", item="URL string")


def _to_hosts(value: str | Sequence[str]) -> tuple[str, ...]:
    """attrs converter for ``http_headers_hosts``."""
    return _one_or_many(value, key="http_headers_hosts", item="string")


# --------------------------------------------------------------------------------------------------
# LoaderConfig
# --------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LoaderConfig:
    """Every setting of the hybrid loader. Times in seconds, sizes in bytes; see the module docstring.

    Immutable: change settings with :meth:`evolve`, which validates like the constructor. Instances
    compare and hash by value, except that ``segment_validator`` is left out of both, and
    ``rtc_config`` (a read-only mapping, which cannot be hashed) takes part in ``==`` but not in
    ``hash()``. Equal configs therefore still have equal hashes.

    Priorities below are 0.6's: a queued segment's priority is its distance, in segments, from the
    segment now playing (0 = the segment needed now).
    """

    # --- player glue (the FAQ's ``segments:`` block) ---------------------------------------------

    forward_segment_count: int = attrs.field(
        default=20,
        validator=_validate,
        metadata=_facts(_int_rule(1), "forwardSegmentCount", "int", block="segments"),
    )
    """How many segments, counting the requested one, are queued per player request (>= 1).
    FAQ: ``segments.forwardSegmentCount``. Should be >= ``p2p_download_max_priority`` and
    ``http_download_max_priority``, or those limits are never reached."""

    swarm_id: str | None = attrs.field(
        default=None, validator=_validate, metadata=_facts(_swarm_id_rule, "swarmId", "str", block="segments")
    )
    """Overrides the master swarm id. ``None``: the master playlist's request URL without its query
    string. Peers only meet when their swarm ids are equal. FAQ: ``segments.swarmId``."""

    # --- cache -----------------------------------------------------------------------------------

    cached_segment_expiration: float = attrs.field(
        default=300.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "cachedSegmentExpiration", "number", unit="seconds"),
    )
    """Seconds. Cache cleaning deletes a segment not accessed (stored, played or served to a peer)
    for longer than this, whether or not it is queued. Cleaning runs on each ``load()``.
    FAQ: ``cachedSegmentExpiration`` (ms)."""

    cached_segments_count: int = attrs.field(
        default=30, validator=_validate, metadata=_facts(_int_rule(0), "cachedSegmentsCount", "int")
    )
    """Segments. After expiry, if more remain cached, the least recently accessed are evicted first,
    skipping segments in the current queue. FAQ: ``cachedSegmentsCount``."""

    # --- HTTP ------------------------------------------------------------------------------------

    required_segments_priority: int = attrs.field(
        default=1, validator=_validate, metadata=_facts(_int_rule(0), "requiredSegmentsPriority", "int")
    )
    """Priority. A queued segment with ``priority <= required_segments_priority`` is *required*: it
    goes to HTTP at once when HTTP is allowed (aborting one later HTTP download if all slots are
    busy). FAQ: ``requiredSegmentsPriority``."""

    simultaneous_http_downloads: int = attrs.field(
        default=2, validator=_validate, metadata=_facts(_int_rule(1), "simultaneousHttpDownloads", "int")
    )
    """Maximum number of concurrent HTTP segment downloads (>= 1). FAQ: ``simultaneousHttpDownloads``."""

    http_download_probability: float = attrs.field(
        default=0.1,
        validator=_validate,
        metadata=_facts(_number_rule(0, hi=1), "httpDownloadProbability", "number", unit="probability"),
    )
    """Probability in [0, 1]. On each random-HTTP tick, with ``N`` pending segments (queued, not
    loading, not cached, not in any peer's map, not recently failed, priority <=
    ``http_download_max_priority``), one of them, chosen uniformly, is fetched over HTTP with
    probability ``min(1, p * N)``. FAQ: ``httpDownloadProbability``."""

    http_download_probability_interval: float = attrs.field(
        default=1.0,
        validator=_validate,
        metadata=_facts(
            _number_rule(0, exclusive=True), "httpDownloadProbabilityInterval", "number", unit="seconds"
        ),
    )
    """Seconds (> 0). Period of the random-HTTP timer. FAQ: ``httpDownloadProbabilityInterval`` (ms)."""

    http_download_probability_skip_if_no_peers: bool = attrs.field(
        default=False,
        validator=_validate,
        metadata=_facts(_bool_rule, "httpDownloadProbabilitySkipIfNoPeers", "bool"),
    )
    """``True``: skip random-HTTP ticks while no peer is connected.
    FAQ: ``httpDownloadProbabilitySkipIfNoPeers``."""

    http_failed_segment_timeout: float = attrs.field(
        default=10.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "httpFailedSegmentTimeout", "number", unit="seconds"),
    )
    """Seconds. After an HTTP failure the segment counts as failed for this long: neither HTTP path
    (required or random) retries it meanwhile; P2P still may. FAQ: ``httpFailedSegmentTimeout`` (ms)."""

    http_download_max_priority: int = attrs.field(
        default=20, validator=_validate, metadata=_facts(_int_rule(0), "httpDownloadMaxPriority", "int")
    )
    """Priority. The random-HTTP timer only considers segments with ``priority <=`` this.
    FAQ: ``httpDownloadMaxPriority``."""

    http_download_initial_timeout: float = attrs.field(
        default=0.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "httpDownloadInitialTimeout", "number", unit="seconds"),
    )
    """Seconds; 0 = off. Length of the start-up "initial P2P mode", during which required and
    random HTTP are both blocked. The mode is active only if this and
    ``http_download_initial_timeout_per_segment`` are both > 0; it ends for good once HTTP is
    allowed, or when the tracker reports no other peers. FAQ: ``httpDownloadInitialTimeout`` (ms)."""

    http_download_initial_timeout_per_segment: float = attrs.field(
        default=4.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "httpDownloadInitialTimeoutPerSegment", "number", unit="seconds"),
    )
    """Seconds. Inside the initial mode, HTTP is also allowed once this much time has passed since
    the mode started *and* the first uncached queued segment has priority 0 (the clock is not reset
    per segment). Also the period of the mode's re-check timer.
    FAQ: ``httpDownloadInitialTimeoutPerSegment`` (ms)."""

    http_download_ranges: bool = attrs.field(
        default=False,
        validator=_validate,
        metadata=_facts(_bool_rule, "httpDownloadRanges", "bool", faq_aliases=("httpUseRanges",)),
    )
    """``True``: when a P2P download is cut over to HTTP (it became required), request only the
    missing tail with ``Range: bytes=<received>-`` and prepend the pieces already received.
    FAQ: ``httpDownloadRanges``; 0.6's code calls it ``httpUseRanges`` (both read, the FAQ's written)."""

    # --- P2P -------------------------------------------------------------------------------------

    simultaneous_p2p_downloads: int = attrs.field(
        default=3, validator=_validate, metadata=_facts(_int_rule(1), "simultaneousP2PDownloads", "int")
    )
    """Maximum number of concurrent P2P downloads (>= 1); each peer serves at most one of our
    requests at a time. FAQ: ``simultaneousP2PDownloads``."""

    p2p_download_max_priority: int = attrs.field(
        default=20, validator=_validate, metadata=_facts(_int_rule(0), "p2pDownloadMaxPriority", "int")
    )
    """Priority. A non-required segment is tried over P2P only if ``priority <=`` this.
    FAQ: ``p2pDownloadMaxPriority``."""

    p2p_segment_download_timeout: float = attrs.field(
        default=60.0,
        validator=_validate,
        metadata=_facts(
            _number_rule(0, exclusive=True), "p2pSegmentDownloadTimeout", "number", unit="seconds"
        ),
    )
    """Seconds (> 0). Limits only the wait for a peer's segment-data *header* after our request,
    not the whole download. On expiry the request is cancelled and the peer is disconnected.
    FAQ: ``p2pSegmentDownloadTimeout`` (ms)."""

    web_rtc_max_message_size: int = attrs.field(
        default=65535,
        validator=_validate,
        metadata=_facts(_int_rule(1, 262144), "webRtcMaxMessageSize", "int"),
    )
    """Bytes, 1..262144. Size of the binary chunks in which we send segment data to a peer.
    FAQ: ``webRtcMaxMessageSize``."""

    use_p2p: bool = attrs.field(
        default=True, validator=_validate, metadata=_facts(_bool_rule, "useP2P", "bool")
    )
    """``False``: no peer id and no tracker client; the loader is HTTP only. FAQ: ``useP2P``."""

    consume_only: bool = attrs.field(
        default=False, validator=_validate, metadata=_facts(_bool_rule, "consumeOnly", "bool")
    )
    """``True``: a download-only peer. It still downloads from peers, but never announces its
    segment map (so no peer requests anything from it), uploads nothing, and, as in 0.6, also
    disables the random-HTTP timer. FAQ: ``consumeOnly``."""

    tracker_announce: tuple[str, ...] = attrs.field(
        default=DEFAULT_TRACKER_ANNOUNCE,
        converter=_to_trackers,
        validator=_validate,
        metadata=_facts(_trackers_rule, "trackerAnnounce", "trackers"),
    )
    """WebTorrent tracker URLs (``ws://`` or ``wss://``) used for signalling. A single string is
    accepted and stored as a 1-tuple. The defaults are public trackers: do not use them in
    production. FAQ: ``trackerAnnounce``."""

    peer_requests_per_announce: int = attrs.field(
        default=10, validator=_validate, metadata=_facts(_int_rule(1, 10), "peerRequestsPerAnnounce", "int")
    )
    """Peers asked for per announce (the tracker ``numwant``), 1..10; the bundled tracker client
    caps offers at 10. FAQ: ``peerRequestsPerAnnounce``."""

    rtc_config: Mapping[str, Any] = attrs.field(
        default=DEFAULT_RTC_CONFIG,
        converter=_to_rtc_config,
        validator=_validate,
        metadata=_facts(_mapping_rule, "rtcConfig", "json"),
        hash=False,
    )
    """WebRTC configuration in the browser's ``RTCConfiguration`` JSON shape (``iceServers``...).
    Stored as a deep-frozen copy: mappings become read-only ``MappingProxyType`` and lists become
    tuples; values must be JSON-like. Compared by ``==`` but left out of ``hash()``. ICE server URIs
    aiortc cannot take are converted or left out when a connection is made (see
    :func:`p2ploader.aio.webrtc.rtc_configuration`). FAQ: ``rtcConfig``."""

    segment_validator: SegmentValidator | None = attrs.field(
        default=None,
        validator=_validate,
        metadata=_facts(_validator_rule, "segmentValidator", "callable"),
        eq=False,
    )
    """``validator(segment, data, method, peer_id)`` returning ``bool`` or an awaitable of one;
    ``method`` is ``"http"`` or ``"p2p"``, ``peer_id`` is ``None`` for HTTP. ``False`` rejects the
    data and the download counts as failed. Left out of ``==``, ``hash()`` and :meth:`to_faq`.
    FAQ: ``segmentValidator``."""

    # --- our HTTP executor (not P2P Media Loader settings) ---------------------------------------

    http_connect_timeout: float = attrs.field(
        default=10.0,
        validator=_validate,
        metadata=_facts(_number_rule(0, exclusive=True), "httpConnectTimeout", "number", unit="seconds"),
    )
    """Seconds (> 0) to establish a connection to the origin. Ours, not P2P Media Loader's.
    FAQ-style name: ``httpConnectTimeout`` (ms)."""

    http_read_timeout: float = attrs.field(
        default=10.0,
        validator=_validate,
        metadata=_facts(_number_rule(0, exclusive=True), "httpReadTimeout", "number", unit="seconds"),
    )
    """Seconds (> 0) without receiving any byte before an HTTP download fails. Ours.
    FAQ-style name: ``httpReadTimeout`` (ms)."""

    http_retries: int = attrs.field(
        default=2, validator=_validate, metadata=_facts(_int_rule(0), "httpRetries", "int")
    )
    """Extra attempts within one HTTP fetch after a transient failure: a connect error, a timeout,
    a connection lost mid-response, a truncated body (the next attempt of a segment asks only for
    the missing bytes, with ``Range``) or a 5xx status (0 = try once). A 4xx, another status the
    fetch cannot use or a wrong ``Content-Range`` ends the fetch at once. Only when the attempts are
    used up does the fetch fail and the segment count as failed. The same applies to every other
    HTTP request of the stream: master and media playlists (loads and live reloads), keys, init
    sections and I-frames, which are fetched again whole. The core's retry policy decides
    (``p2ploader.core.retries``); the executor performs it. Ours. FAQ-style name: ``httpRetries``."""

    http_retry_backoff: float = attrs.field(
        default=0.5,
        validator=_validate,
        metadata=_facts(_number_rule(0), "httpRetryBackoff", "number", unit="seconds"),
    )
    """Seconds to wait before the first retry, doubled before each further one: within one fetch
    (``http_retries``; segments, playlists, keys, init sections), and between the failed fetches of
    a segment the player waits for (the core's retry policy, up to ``get_segment``'s
    ``max_attempts``). Ours.
    FAQ-style name: ``httpRetryBackoff`` (ms)."""

    http_retry_jitter: float = attrs.field(
        default=0.5,
        validator=_validate,
        metadata=_facts(_number_rule(0, hi=1), "httpRetryJitter", "number"),
    )
    """Fraction (0 to 1) of each retry delay left to chance: a delay of ``d`` seconds
    (``http_retry_backoff``, doubled) becomes a uniform draw in ``[(1 - jitter) * d, d]``, so
    that viewers whose fetches failed together (an origin outage) do not come back together. 0
    waits exactly ``d``. Ours. FAQ-style name: ``httpRetryJitter``."""

    http_headers: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=_to_http_headers,
        validator=_validate,
        metadata=_facts(_mapping_rule, "httpHeaders", "json"),
        hash=False,
    )
    """Extra request headers (name -> value) for the loader's HTTP requests to the stream's host:
    playlists, segments, keys, init sections and integrity spot checks whose URL has the origin
    (scheme, host and port) of the URL given to the loader, or one ``http_headers_hosts`` adds;
    never to another host a playlist or a redirect names, never to peers or trackers. Names
    are RFC 9110 tokens, values printable ASCII (no CR/LF); hop-by-hop headers, ``Host``,
    ``Content-Length``, ``Range``, ``If-Range``, ``Accept-Encoding``, ``Cookie`` and ``User-Agent``
    are refused (see :data:`FORBIDDEN_HTTP_HEADERS`). Stored as a read-only copy; compared by ``==``
    but left out of ``hash()``. Ours. FAQ-style name: ``httpHeaders``."""

    http_cookies: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=_to_http_cookies,
        validator=_validate,
        metadata=_facts(_mapping_rule, "httpCookies", "json"),
        hash=False,
    )
    """Cookies (name -> value) sent with the loader's HTTP requests to the stream's host (the same
    requests as ``http_headers``), on top of those the origin sets. Values are RFC 6265 cookie
    octets. Stored as a read-only copy; compared by ``==`` but left out of ``hash()``. Ours.
    FAQ-style name: ``httpCookies``."""

    http_headers_hosts: tuple[str, ...] = attrs.field(
        default=(),
        converter=_to_hosts,
        validator=_validate,
        metadata=_facts(_hosts_rule, "httpHeadersHosts", "strings"),
    )
    """Origins besides the stream's own that receive ``http_headers`` and ``http_cookies``: entries
    ``scheme://host[:port]`` (http or https; the port defaults to the scheme's), or ``"*"`` for every
    host (a playlist or a redirect can then send the credentials to any server it names). Empty
    by default: only the origin of the URL given to the loader gets them, also after a redirect
    (a hop to another origin goes without them). ``user_agent`` goes everywhere. Ours.
    FAQ-style name: ``httpHeadersHosts``."""

    user_agent: str | None = attrs.field(
        default=None, validator=_validate, metadata=_facts(_user_agent_rule, "userAgent", "str")
    )
    """``User-Agent`` of the loader's HTTP requests (printable ASCII); ``None`` keeps httpx's
    (``python-httpx/<version>``). Ours. FAQ-style name: ``userAgent``."""

    live_refresh_interval: float | None = attrs.field(
        default=None,
        validator=_validate,
        metadata=_facts(_optional_positive_number_rule, "liveRefreshInterval", "number", unit="seconds"),
    )
    """Seconds between reloads of a live media playlist; ``None`` follows RFC 8216 (the target
    duration after a change, half of it when the playlist was unchanged). Ours.
    FAQ-style name: ``liveRefreshInterval`` (ms)."""

    live_playlist_stuck_reloads: int = attrs.field(
        default=6, validator=_validate, metadata=_facts(_int_rule(0), "livePlaylistStuckReloads", "int")
    )
    """Reloads in a row (>= 0; 0: never give up) that may find a live media playlist (no
    ``EXT-X-ENDLIST``) unchanged before the loader reports it stuck: at half of them (rounded down,
    at least 1) it sends a :class:`~p2ploader.core.notifications.LivePlaylistStale` notification
    (and logs a warning); at all of them it stops reloading and ``segments()``, past the last
    listed segment, raises :class:`~p2ploader.errors.LivePlaylistStuckError`. The default, 6, comes
    from RFC 8216: a server must add a segment within 1.5 target durations (§6.2.1) and a client
    reloads an unchanged playlist every half target duration (§6.3.4), so with RFC timing the
    warning (3 unchanged reloads) comes 2 target durations after the last change, already past
    the server's deadline, and the error (6) after 3.5, once a player that started 3 segments
    from the live edge has played everything it had. Reloads are counted at that RFC pace
    whatever ``live_refresh_interval`` is (see :class:`~p2ploader.hls.StalePlaylistWatch`), so the
    time to the report is ``target duration × (1 + (n - 1) / 2)`` seconds. Ours. FAQ-style name:
    ``livePlaylistStuckReloads``."""

    max_playlist_bytes: int = attrs.field(
        default=16 * 1024 * 1024,
        validator=_validate,
        metadata=_facts(_int_rule(1024), "maxPlaylistBytes", "int"),
    )
    """Bytes (>= 1024) a master or media playlist may have; 16 MiB by default. Reading stops at the
    cap (whatever ``Content-Length`` says) with :class:`~p2ploader.errors.PlaylistTooLargeError`; a
    live refresh that hits it keeps the last good playlist. Ours. FAQ-style name:
    ``maxPlaylistBytes``."""

    max_playlist_segments: int = attrs.field(
        default=50_000, validator=_validate, metadata=_facts(_int_rule(1), "maxPlaylistSegments", "int")
    )
    """Segments (``#EXTINF`` lines, >= 1) a media playlist may list, counted before it is parsed:
    parsing costs about 0.1 ms and 0.5 KiB per segment (50,000, a day of 2-second segments with
    room to spare: ~6 s on a busy 2-core machine). More raises
    :class:`~p2ploader.errors.PlaylistTooLargeError`. Ours. FAQ-style name:
    ``maxPlaylistSegments``."""

    max_init_section_bytes: int = attrs.field(
        default=16 * 1024 * 1024,
        validator=_validate,
        metadata=_facts(_int_rule(1024), "maxInitSectionBytes", "int"),
    )
    """Bytes (>= 1024) an ``EXT-X-MAP`` initialisation section may have; 16 MiB by default (real ones
    are kilobytes). Reading stops at the cap with :class:`~p2ploader.errors.ResponseTooLargeError`.
    Ours. FAQ-style name: ``maxInitSectionBytes``."""

    # --- what the player is handed (ours; docs/decryption.md) ------------------------------------

    decrypt: bool = attrs.field(
        default=False, validator=_validate, metadata=_facts(_bool_rule, "decrypt", "bool")
    )
    """Whether the player is handed plaintext. With ``True``, ``get_segment()`` and ``segments()``
    decrypt ``AES-128`` segments (``EXT-X-KEY``), hand clear ones over unchanged, and
    ``SAMPLE-AES``, ``SAMPLE-AES-CTR`` or a non-``identity`` ``KEYFORMAT`` raise
    :class:`~p2ploader.errors.UnsupportedEncryptionError`. The cache, the peers and the integrity
    checks keep the encrypted bytes as published; keys come over HTTP only, once per key URI.
    ``False`` (the default) hands over the bytes as published. Either call can override it with
    its ``decrypt=`` argument. Ours. FAQ-style name: ``decrypt``."""

    # --- our P2P settings (not in P2P Media Loader 0.6) ------------------------------------------

    p2p_stall_timeout: float = attrs.field(
        default=2.0,
        validator=_validate,
        metadata=_facts(_number_rule(0, exclusive=True), "p2pStallTimeout", "number", unit="seconds"),
    )
    """Seconds (> 0) without a byte from a peer, once its data header arrived, before the request is
    dropped (the peer stays connected). Its bytes are kept: with ``http_download_ranges`` the
    segment continues over HTTP from there. 0.6 has no such timeout (a slow peer held a segment
    until it became required); 2.x uses 2 s (``p2pNotReceivingBytesTimeoutMs``). Ours.
    FAQ-style name: ``p2pStallTimeout`` (ms)."""

    max_peers: int = attrs.field(
        default=20, validator=_validate, metadata=_facts(_int_rule(0, 1000), "maxPeers", "int")
    )
    """Most peers connected at once per swarm (0..1000). When they are all connected, a new peer
    takes the slot of one that, ``peer_idle_grace`` seconds after connecting, has neither delivered
    bytes nor taken an upload in the last 30 s nor announces a segment we still need (see
    docs/p2p.md). Ours. FAQ-style name: ``maxPeers``."""

    peer_idle_grace: float = attrs.field(
        default=5.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "peerIdleGrace", "number", unit="seconds"),
    )
    """Seconds (>= 0) after a peer's channel opened during which it keeps its slot whatever it does;
    after that, a peer that delivers nothing, takes nothing from us and announces nothing we need
    gives its slot up to a newcomer when all ``max_peers`` are taken (idle Sybils cannot hold the
    swarm). Ours. FAQ-style name: ``peerIdleGrace`` (ms)."""

    swarm_url_pattern: str | None = attrs.field(
        default=None, validator=_validate, metadata=_facts(_regex_rule, "swarmUrlPattern", "str")
    )
    """Peer5-style URL normalisation: a regular expression searched in the manifest URL (query
    stripped); the swarm id is its capture groups joined (or the whole match), so viewers of one
    stream behind different CDN hosts or tokens share a swarm. Ignored when ``swarm_id`` is set.
    Browser peers only join the same swarm if their page passes the same string as ``swarmId``.
    Ours. FAQ-style name: ``swarmUrlPattern``."""

    policy: str = attrs.field(
        default="p2pml-0.6", validator=_validate, metadata=_facts(_policy_rule, "policy", "str")
    )
    """Name of the download policy: ``"p2pml-0.6"`` (P2P Media Loader 0.6's algorithm, the FAQ
    settings' meaning; the default), ``"p2pml-2.2"`` (2.2's time windows) or ``"p2ploader-live"``
    (elected seeders for low live latency; experimental), or any registered plug-in. Ours.
    FAQ-style name: ``policy``."""

    policy_settings: Mapping[str, Any] = attrs.field(
        factory=dict,
        converter=_to_policy_settings,
        validator=_validate,
        metadata=_facts(_mapping_rule, "policySettings", "json"),
        hash=False,
    )
    """Download policies' own settings (those with no FAQ counterpart), per policy name, by their
    documented names (snake_case, seconds): e.g. ``{"p2ploader-live": {"http_lead_time": 1.5}}``
    (``LivePolicySettings``) or ``{"p2pml-2.2": {"high_demand_time_window": 20}}``
    (``P2PML22Settings``). A policy without an entry keeps its defaults; entries for other policies
    than ``policy`` wait for a run that picks them (the simulator compares policies on one
    config). Checked when the scheduler builds its policy, every entry: an unknown policy or
    setting name, a value of the wrong kind or out of range, or settings for a policy that has none
    raise ``ConfigError``. Stored as a read-only copy. Ours. FAQ-style name: ``policySettings``
    (an object of objects, with the same names)."""

    max_concurrent_uploads: int = attrs.field(
        default=2, validator=_validate, metadata=_facts(_int_rule(0), "maxConcurrentUploads", "int")
    )
    """Uploads served at once (0 = no limit). A request beyond it is answered "absent" (a standard
    P2P Media Loader 2.x reply), so the requester turns to another holder: a new live segment then
    spreads as a tree that doubles each round instead of queueing at its first holder. Ours.
    FAQ-style name: ``maxConcurrentUploads``."""

    upload_rate_limit: float | None = attrs.field(
        default=None,
        validator=_validate,
        metadata=_facts(_optional_positive_number_rule, "uploadRateLimit", "number"),
    )
    """Bytes per second (> 0) this peer uploads at most, over all its peers; ``None``: no cap. Ours
    (``consume_only`` turns uploads off entirely). FAQ-style name: ``uploadRateLimit`` (bytes/s)."""

    upload_stall_timeout: float = attrs.field(
        default=5.0,
        validator=_validate,
        metadata=_facts(_number_rule(0, exclusive=True), "uploadStallTimeout", "number", unit="seconds"),
    )
    """Seconds (> 0) an upload waits for the peer to take queued bytes (the data channel's buffer
    not shrinking at all) before it gives up: a receiver that stops reading would otherwise hold
    the swarm's upload turn for ever. The peer is disconnected and gets a strike. An honest peer
    cancels its own download after 2 s without bytes (``p2p_stall_timeout``, 2.x's
    ``p2pNotReceivingBytesTimeoutMs``), long before this. Ours. FAQ-style name:
    ``uploadStallTimeout`` (ms)."""

    upload_delay_target: float = attrs.field(
        default=0.05,
        validator=_validate,
        metadata=_facts(_delay_target_rule, "uploadDelayTarget", "number", unit="seconds"),
    )
    """Seconds (at most 1) of queuing delay our uploads may add on our uplink; ``0``: off.
    Uploads are paced at a rate steered by the round trips of the links they go over (LEDBAT-style,
    RFC 6817: cut by a quarter at most once per round trip while the delay over the link's minimum
    exceeds this, raised additively below it; never under 16 kB/s), so the uplink's queue stays
    short and our own HTTP requests and acknowledgements do not wait behind our uploads. On by
    default: a full uplink queue stalls playback on slow uplinks. Combined with
    ``upload_rate_limit``, the smaller rate applies. Ours. FAQ-style name: ``uploadDelayTarget``
    (ms)."""

    upload_yield_time: float = attrs.field(
        default=4.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "uploadYieldTime", "number", unit="seconds"),
    )
    """Seconds (>= 0): while an HTTP download of a segment the player needs within this time is in
    flight (a segment HTTP took over from peers near its deadline, or one the player asked for
    before it plays), our uploads pause, for at most 1.5 s at a time and half the time at most
    (:class:`~p2ploader.core.upload_control.UploadHold`), so that our uplink carries that
    download's requests and TCP acknowledgements at once instead of queuing them behind uploads
    (the delay-based control keeps the queue short, not empty). On a 1 Mbit/s uplink busy with
    uploads, such a download took 1.6 s instead of 0.1 s and playback stalled. ``0``: uploads never
    pause. Ours. FAQ-style name: ``uploadYieldTime`` (ms)."""

    upload_budget_rate: float | None = attrs.field(
        default=4.0,
        validator=_validate,
        metadata=_facts(_optional_positive_number_rule, "uploadBudgetRate", "number"),
    )
    """Media seconds per second (> 0) one peer may take from us on average; ``None``: no budget.
    Each upload costs the media time it carries (a whole 4 s segment costs 4); a request while the
    peer's budget is spent is answered "absent" (counted in ``uploads_over_budget``). A viewer
    plays 1 media second per second, so 4 only binds a peer asking for far more than it can play.
    Ours. FAQ-style name: ``uploadBudgetRate``."""

    upload_budget_burst: float = attrs.field(
        default=600.0,
        validator=_validate,
        metadata=_facts(_number_rule(0, exclusive=True), "uploadBudgetBurst", "number", unit="seconds"),
    )
    """Media seconds (> 0) one peer may take at once before ``upload_budget_rate`` binds (a joining
    viewer's forward buffer, a browser's prefetch window: the ``faq-vod`` preset prefetches 50
    segments, 500 s of 10 s segments). Ours. FAQ-style name: ``uploadBudgetBurst`` (ms)."""

    # --- integrity (ours; docs/security.md) -------------------------------------------------------

    integrity_sha256: bool | None = attrs.field(
        default=None, validator=_validate, metadata=_facts(_auto_bool_rule, "integritySha256", "bool")
    )
    """Whether every segment holding bytes from a peer is checked against the SHA-256 the origin
    publishes in the media playlist (an ``#EXT-X-P2PLOADER-SHA256`` tag before the segment URI; add
    them with ``p2ploader hash-playlist``) before it is stored, played or shared. ``None`` (the
    default): on whenever the playlist publishes digests; ``True``: the same, stated; ``False``:
    off, digests or not. A segment counts as P2P if even one byte came from a peer (an HTTP Range
    request that continues a peer's bytes included). On a mismatch the bytes are dropped, every
    peer that sent any of them is banned for ``peer_ban_time`` and the segment is loaded again
    whole over HTTP. Costs one SHA-256 per P2P segment and no request. A segment without a
    published hash falls back to spot checks (``integrity_spot_checks``) or, with those off, is
    accepted unchecked. Ours. FAQ-style name: ``integritySha256`` (``null``: automatic)."""

    integrity_spot_checks: int = attrs.field(
        default=0, validator=_validate, metadata=_facts(_int_rule(0, 64), "integritySpotChecks", "int")
    )
    """Byte ranges (0..64; 0 = off) of a P2P segment without a published hash compared with the
    origin through small ``Range`` requests before the segment is accepted. One range always ends at
    the last byte, so the origin's ``Content-Range`` total also checks the size. A mismatch bans the
    peer for ``peer_ban_time`` and the segment is loaded again; an origin that cannot answer makes
    the check inconclusive and the segment is accepted. Ours. FAQ-style name: ``integritySpotChecks``."""

    integrity_spot_check_bytes: int = attrs.field(
        default=64,
        validator=_validate,
        metadata=_facts(_int_rule(1, 65536), "integritySpotCheckBytes", "int"),
    )
    """Bytes per spot-check range (1..65536). A segment no larger than
    ``integrity_spot_checks * integrity_spot_check_bytes`` is compared whole, in one request. Ours.
    FAQ-style name: ``integritySpotCheckBytes``."""

    integrity_spot_check_probability: float = attrs.field(
        default=1.0,
        validator=_validate,
        metadata=_facts(_number_rule(0, hi=1), "integritySpotCheckProbability", "number", unit="probability"),
    )
    """Probability in [0, 1] that a P2P segment without a published hash is spot-checked at all
    (each segment drawn independently): the request budget is about
    ``probability * integrity_spot_checks`` small requests per P2P segment. A liar is caught within
    about ``1 / probability`` corrupted segments. Ours. FAQ-style name:
    ``integritySpotCheckProbability``."""

    peer_ban_time: float = attrs.field(
        default=600.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "peerBanTime", "number", unit="seconds"),
    )
    """Seconds a peer stays banned from the swarm: after one failed integrity check, or after three
    protocol violations within this time. A banned peer's connections are refused even when a
    tracker introduces it again. Ours. FAQ-style name: ``peerBanTime`` (ms)."""

    # --- topology and upload policy (ours; docs/topologies.md) -----------------------------------

    topology: str = attrs.field(
        default="mesh", validator=_validate, metadata=_facts(_topology_rule, "topology", "str")
    )
    """``"mesh"`` (the default: every peer may exchange with every peer of its swarm, as P2P Media
    Loader does) or ``"host-client"`` (OvenMediaEngine's one-level tree: *hosts*, chosen by
    ``topology_rules`` from the declared ``peer_*`` attributes, load from the origin and upload to
    at most ``max_client_peers_per_host_peer`` *clients*; a client never uploads). A host loads its
    whole queue over HTTP at once (it has no peer to load from); a client runs as ``consume_only``.
    Browser peers declare no attributes and take no part in a host-client swarm. Ours. FAQ-style
    name: ``topology``."""

    max_client_peers_per_host_peer: int = attrs.field(
        default=2, validator=_validate, metadata=_facts(_int_rule(1, 100), "maxClientPeersPerHostPeer", "int")
    )
    """Clients a host serves at most (1..100), OvenMediaEngine's ``<MaxClientPeersPerHostPeer>``
    (default 2: one host and two clients make the documented two-thirds offload). Only with
    ``topology="host-client"``. Ours. FAQ-style name: ``maxClientPeersPerHostPeer``."""

    topology_rules: str = attrs.field(
        default="ome", validator=_validate, metadata=_facts(_topology_rules_rule, "topologyRules", "str")
    )
    """Rule set classifying peers as hosts or clients: ``"ome"`` (OvenMediaEngine's documented
    rules: a host is not mobile, not Linux, its client is not MS Edge and not unknown; a client
    attaches to a host of the same client kind), ``"headless-linux"`` (the same, but desktop Linux
    may host), or any set registered with ``p2ploader.core.topology.register_rules``. Ours.
    FAQ-style name: ``topologyRules``."""

    peer_device: str = attrs.field(
        default="desktop", validator=_validate, metadata=_facts(_attribute_rule(DEVICES), "peerDevice", "str")
    )
    """This peer's device class as the embedding application declares it: ``"desktop"``,
    ``"mobile"`` or ``"unknown"``. Used by ``topology_rules``. Ours. FAQ-style name: ``peerDevice``."""

    peer_os: str | None = attrs.field(
        default=None,
        validator=_validate,
        metadata=_facts(_attribute_rule(OPERATING_SYSTEMS, optional=True), "peerOs", "str"),
    )
    """This peer's operating system: ``"windows"``, ``"macos"``, ``"linux"``, ``"android"``,
    ``"ios"``, ``"other"`` or ``"unknown"``; ``None`` reads it from ``platform.system()``. Ours.
    FAQ-style name: ``peerOs``."""

    peer_client: str = attrs.field(
        default="p2ploader",
        validator=_validate,
        metadata=_facts(_attribute_rule(CLIENT_KINDS), "peerClient", "str"),
    )
    """This peer's client kind: ``"p2ploader"`` (the default), or a browser family (``"chrome"``,
    ``"safari"``, ``"firefox"``, ``"edge"``, ``"other"``, ``"unknown"``) for an application that
    relays a browser's identity. Clients only attach to hosts of the same kind. Ours. FAQ-style
    name: ``peerClient``."""

    upload_min_buffer: float | None = attrs.field(
        default=None,
        validator=_validate,
        metadata=_facts(_optional_positive_number_rule, "uploadMinBuffer", "number", unit="seconds"),
    )
    """Seconds (> 0): upload only while this peer's own forward buffer (contiguous cached media
    ahead of the playback position) holds at least this much; below it every request is answered
    "absent" (a standard P2P Media Loader 2.x reply) so the uplink is left to our own downloads.
    ``None``: no condition. Ours. FAQ-style name: ``uploadMinBuffer`` (ms)."""

    swarm_join_delay: float | None = attrs.field(
        default=2.0,
        validator=_validate,
        metadata=_facts(_optional_positive_number_rule, "swarmJoinDelay", "number", unit="seconds"),
    )
    """Seconds (> 0): join the swarm (announce to the trackers) once the first segment has been
    loaded, or at the latest this long after the loader starts, so that connecting to peers never
    competes with startup. ``None``: join at once. Ours. FAQ-style name: ``swarmJoinDelay`` (ms)."""

    rendition_linger: float = attrs.field(
        default=30.0,
        validator=_validate,
        metadata=_facts(_number_rule(0), "renditionLinger", "number", unit="seconds"),
    )
    """Seconds a loader keeps seeding the swarm of the rendition it switched away from (P2P Media
    Loader 2.x keeps an inactive loader 30 s); then it leaves that swarm. 0 leaves at once. Ours.
    FAQ-style name: ``renditionLinger`` (ms)."""

    def __attrs_post_init__(self) -> None:
        # Times and the probability accept ints (``cached_segment_expiration=300``) but are
        # stored as float, so that a config's values have one type whatever the caller passed.
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None and type(value) is not float:
                object.__setattr__(self, name, float(value))

    # --- derived copies --------------------------------------------------------------------------

    def evolve(self, **changes: Any) -> LoaderConfig:
        """A copy with ``changes`` (snake_case field names, seconds) applied and validated."""
        fields = attrs.fields_dict(LoaderConfig)
        for name in changes:
            if name not in fields:
                suggestion = _closest(name, fields)
                hint = f"; did you mean {suggestion!r}?" if suggestion else ""
                raise ConfigError(
                    f"unknown LoaderConfig field {name!r}{hint}", key=name, suggestion=suggestion
                )
        return attrs.evolve(self, **changes)

    @classmethod
    def preset(cls, name: str) -> LoaderConfig:
        """The preset called ``name`` (see :data:`PRESETS`); an unknown name suggests the closest."""
        try:
            return PRESETS[name]
        except (KeyError, TypeError):
            pass
        suggestion = _closest(str(name), PRESETS, cutoff=0.0)
        known = ", ".join(repr(n) for n in PRESETS)
        raise ConfigError(
            f"unknown preset {name!r}; did you mean {suggestion!r}? Known presets: {known}",
            suggestion=suggestion,
        )

    # --- the FAQ spelling ------------------------------------------------------------------------

    @classmethod
    def from_faq(cls, mapping: Mapping[str, Any]) -> LoaderConfig:
        """Build a config from P2P Media Loader's JavaScript settings object, as a Python mapping.

        ``mapping`` is flat (``{"forwardSegmentCount": 50, "cachedSegmentsCount": 1000}``) or nested
        like the FAQ (``{"segments": {...}, "loader": {...}}``), or a mix. Names are camelCase and
        times are milliseconds. Any setting is accepted in either block; the same setting given
        twice must have the same value. ``None`` (JavaScript ``null``/``undefined``) means "not
        set": the default applies. Naming notes:

        * ``httpUseRanges`` (0.6's code) and ``httpDownloadRanges`` (the FAQ) are the same setting;
          giving both with different values is an error.
        * Legacy ``bufferedSegmentsCount`` sets both ``p2pDownloadMaxPriority`` and
          ``httpDownloadMaxPriority`` unless they are given explicitly. That is what 0.6 meant to
          do: upstream 0.6 sets only the P2P one, because of a copy-paste bug.
        * ``xhrSetup``, ``segmentUrlBuilder``, ``segmentsStorage`` and ``assetsStorage`` are
          JavaScript hooks with no Python equivalent yet, and are rejected.
        * A P2P Media Loader 2.x config, ``{"core": {...}}``, is read by :meth:`from_p2pml2`
          (``core`` cannot be mixed with 0.6 settings).

        Unknown keys raise :class:`ConfigError` naming the key and suggesting the closest valid
        one (also for snake_case names: those belong to ``LoaderConfig(...)``, in seconds).
        """
        return _from_faq(mapping)

    @classmethod
    def from_p2pml2(cls, mapping: Mapping[str, Any], base: LoaderConfig | None = None) -> LoaderConfig:
        """Build a config from P2P Media Loader 2.x's settings object: ``{"core": {...}}`` as given
        to ``p2p-media-loader-hlsjs``, or the ``CoreConfig`` itself (p2p-media-loader-core 2.3.1's
        names; windows in seconds, ``...Ms`` timeouts in milliseconds). The result is ``base``
        (default ``LoaderConfig()``) with the ``"p2pml-2.2"`` policy selected and the given settings
        mapped onto its policy settings and the loader's fields; unset keys keep ``base``'s values.
        :meth:`from_faq` and :meth:`from_faq_text` call this when they see a ``core`` block.

        Functions (``validateP2PSegment``, ``httpRequestSetup``...) and 1.0.x's removed cache
        settings are refused; ``p2pErrorRetries``, ``trackerClientVersionPrefix`` and
        ``segmentMemoryStorageLimit`` are ignored; ``secondaryStream`` values must equal the main
        stream's. Unknown keys raise :class:`ConfigError` suggesting the closest 2.x name. The full
        table is in docs/configuration.md (and :data:`p2ploader.p2pml2_config.P2PML2_KEYS`).
        """
        from p2ploader.p2pml2_config import config_from_p2pml2

        return config_from_p2pml2(mapping, base)

    @classmethod
    def from_faq_text(cls, text: str) -> LoaderConfig:
        """Parse the FAQ's JavaScript object literal (comments, unquoted keys, trailing commas...)
        and build a config with :meth:`from_faq`. The outer braces may be omitted, as in the FAQ.
        A syntax error raises :class:`ConfigError` with its line and column."""
        if not isinstance(text, str):
            raise ConfigError(f"from_faq_text() takes a str, got {type(text).__name__}")
        return _from_faq(parse_js_object(text))

    def to_faq(self) -> dict[str, Any]:
        """The FAQ spelling: ``{"segments": {...}, "loader": {...}}``, camelCase, milliseconds.

        JSON-serialisable; ``segment_validator`` is left out (callables cannot be serialised) and
        so is ``swarmId`` when it is ``None``. Every key is written with the FAQ's own name (range
        continuation is ``httpDownloadRanges``; 0.6's ``httpUseRanges`` is still read, not written).
        ``LoaderConfig.from_faq(cfg.to_faq()) == cfg``: exact for every time
        that is a whole number of milliseconds (anything read from a FAQ config) and for nearly all
        others; the rare time with no exact binary64 millisecond counterpart moves by about an ulp.
        """
        out: dict[str, dict[str, Any]] = {"segments": {}, "loader": {}}
        for spec in _FAQ_KEYS.values():
            if not spec.emit:
                continue
            value = getattr(self, spec.field)
            if spec.kind == "callable" or value is None:
                continue
            if spec.kind == "ms":
                value = _seconds_to_ms(value)
            elif spec.kind in ("trackers", "strings"):
                value = list(value)
            elif spec.kind == "json":
                value = _thaw_json(value)
            out[spec.block][spec.name] = value
        return dict(out)


# --------------------------------------------------------------------------------------------------
# The FAQ spelling: key table, conversion, suggestions
# --------------------------------------------------------------------------------------------------


@attrs.frozen
class _FaqKey:
    name: str
    field: str
    kind: _Kind
    block: Literal["segments", "loader"] = "loader"
    emit: bool = True  # written by to_faq (False for aliases)


_FIELD_FACTS: Final[Mapping[str, _Facts]] = MappingProxyType(
    {field.name: _facts_of(field) for field in attrs.fields(LoaderConfig)}
)
_RULES: Final[Mapping[str, _Rule]] = MappingProxyType({name: f.rule for name, f in _FIELD_FACTS.items()})
#: Fields holding a time in seconds (stored as float; the FAQ spelling uses milliseconds).
_SECONDS_FIELDS: Final = frozenset(name for name, f in _FIELD_FACTS.items() if f.unit == "seconds")
#: Fields stored as float (times, and the probabilities).
_FLOAT_FIELDS: Final = frozenset(name for name, f in _FIELD_FACTS.items() if f.unit is not None)


def _faq_keys() -> dict[str, _FaqKey]:
    """FAQ name -> its key, in field order, each field's written name before its aliases."""
    keys: dict[str, _FaqKey] = {}
    for name, facts in _FIELD_FACTS.items():
        kind: _Kind = "ms" if facts.unit == "seconds" else facts.kind
        for faq in (facts.faq, *facts.faq_aliases):
            keys[faq] = _FaqKey(faq, name, kind, facts.block, emit=faq == facts.faq)
    return keys


_FAQ_KEYS: Final[Mapping[str, _FaqKey]] = MappingProxyType(_faq_keys())

_RANGES_ALIASES: Final = ("httpUseRanges", "httpDownloadRanges")
_LEGACY_BUFFERED: Final = "bufferedSegmentsCount"
_BLOCKS: Final = ("segments", "loader")
_JS_HOOKS: Final = frozenset({"xhrSetup", "segmentUrlBuilder", "segmentsStorage", "assetsStorage"})
_VALID_FAQ_KEYS: Final = (*_FAQ_KEYS, _LEGACY_BUFFERED)


def _normalise(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _closest(name: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``name``, compared case-insensitively and ignoring ``_``/``-``."""
    by_norm = {_normalise(c): c for c in candidates}
    norm = _normalise(name)
    if norm in by_norm:
        return by_norm[norm]
    matches = difflib.get_close_matches(norm, by_norm, n=1, cutoff=cutoff)
    return by_norm[matches[0]] if matches else None


def _unknown_key_error(key: str, where: str, candidates: Iterable[str]) -> ConfigError:
    suggestion = _closest(key, candidates)
    message = f"unknown setting {where!r}"
    if suggestion is not None:
        message += f"; did you mean {suggestion!r}?"
        if "_" in key:
            message += (
                " from_faq() takes the FAQ's camelCase names with times in milliseconds;"
                " snake_case names with times in seconds are for LoaderConfig(...) and evolve()"
            )
    else:
        message += " (see docs/configuration.md for the valid names)"
    return ConfigError(message, key=key, suggestion=suggestion)


def _seconds_to_ms(seconds: float) -> int | float:
    """Milliseconds for ``seconds`` such that ``ms / 1000 == seconds`` whenever such a float exists;
    an int when the time is a whole number of milliseconds."""
    approx = seconds * 1000
    whole = round(approx)
    if whole / 1000 == seconds:
        return whole
    for direction in (math.inf, -math.inf):
        candidate = approx
        for _ in range(8):
            if candidate / 1000 == seconds:
                return candidate
            candidate = math.nextafter(candidate, direction)
    return approx


def _convert_faq_value(spec: _FaqKey, key: str, value: object) -> object:
    """Type-check one FAQ value and convert it to the field's unit; raise naming ``key``."""

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{key} must be {expected}, got {value!r} ({type(value).__name__})", key=key)

    if spec.kind in ("int", "ms", "number"):
        if not _is_number(value):
            raise wrong("a number" if spec.kind != "int" else "an integer")
        assert isinstance(value, int | float)
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value!r}", key=key)
        if spec.kind == "int":
            if isinstance(value, float):
                # JavaScript has no integer type: accept 50.0, reject 50.5.
                if not value.is_integer():
                    raise wrong("an integer")
                return int(value)
            return value
        if spec.kind == "ms":
            return value / 1000
        return float(value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if spec.kind == "str":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if spec.kind == "trackers":
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(url, str) for url in value):
            return tuple(value)
        raise wrong("a URL string or a list of URL strings")
    if spec.kind == "strings":
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise wrong("a string or a list of strings")
    if spec.kind == "json":
        if not isinstance(value, Mapping):
            raise wrong("an object (mapping)")
        return _freeze_mapping(value, key)
    # callable
    if not callable(value):
        raise wrong("a callable")
    return value


def _collect(mapping: Mapping[str, Any]) -> dict[str, tuple[object, str]]:
    """Flatten ``mapping`` into ``{faq_key: (value, "where.it.was")}``, checking the keys."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"from_faq() takes a mapping, got {type(mapping).__name__}")
    items: list[tuple[str, str, object]] = []  # (key, where, value)
    for key, value in mapping.items():
        if key in _BLOCKS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{key} must be an object (mapping) of settings, got {type(value).__name__}", key=key
                )
            items.extend((k, f"{key}.{k}", v) for k, v in value.items())
        else:
            items.append((key, key, value))

    collected: dict[str, tuple[object, str]] = {}
    top_level_candidates = (*_VALID_FAQ_KEYS, *_BLOCKS)
    for key, where, value in items:
        if not isinstance(key, str):
            raise ConfigError(f"setting names must be strings, got {key!r}")
        if key in _JS_HOOKS:
            raise ConfigError(
                f"{where!r} is a JavaScript hook of P2P Media Loader with no Python equivalent yet;"
                " remove it from the config",
                key=key,
            )
        if key not in _FAQ_KEYS and key != _LEGACY_BUFFERED:
            if key in _BLOCKS:
                raise ConfigError(f"{where!r}: the {key!r} block cannot be nested in another block", key=key)
            nested = "." in where
            raise _unknown_key_error(key, where, _VALID_FAQ_KEYS if nested else top_level_candidates)
        if value is None:  # JavaScript null / undefined: not set, the default applies
            continue
        if key in collected:
            previous, previous_where = collected[key]
            if not same_value(previous, value):
                raise ConfigError(
                    f"{key!r} is given twice with different values: {previous_where}={previous!r}"
                    f" and {where}={value!r}",
                    key=key,
                )
            continue
        collected[key] = (value, where)

    a, b = (collected.get(name) for name in _RANGES_ALIASES)
    if a is not None and b is not None and not same_value(a[0], b[0]):
        raise ConfigError(
            f"{_RANGES_ALIASES[0]!r} and {_RANGES_ALIASES[1]!r} are the same setting but are given"
            f" different values: {a[1]}={a[0]!r}, {b[1]}={b[0]!r}",
            key=_RANGES_ALIASES[1],
        )
    return collected


def _check_range(key: str, field: str, converted: object, raw: object) -> None:
    reason = _RULES[field](converted)
    if reason is not None:
        unit = " (milliseconds)" if field in _SECONDS_FIELDS and _is_number(raw) else ""
        raise ConfigError(f"{key} {reason}, got {raw!r}{unit}", key=key)


def _from_faq(mapping: Mapping[str, Any]) -> LoaderConfig:
    if isinstance(mapping, Mapping) and "core" in mapping:
        # P2P Media Loader 2.x's {"core": {...}}: another spelling with its own rules.
        from p2ploader.p2pml2_config import config_from_p2pml2

        return config_from_p2pml2(mapping)
    collected = _collect(mapping)
    kwargs: dict[str, Any] = {}
    for key, (raw, _where) in collected.items():
        if key == _LEGACY_BUFFERED:
            continue
        spec = _FAQ_KEYS[key]
        converted = _convert_faq_value(spec, key, raw)
        _check_range(key, spec.field, converted, raw)
        kwargs[spec.field] = converted

    if _LEGACY_BUFFERED in collected:
        raw = collected[_LEGACY_BUFFERED][0]
        legacy = _FaqKey(_LEGACY_BUFFERED, "p2p_download_max_priority", "int")
        converted = _convert_faq_value(legacy, _LEGACY_BUFFERED, raw)
        _check_range(_LEGACY_BUFFERED, legacy.field, converted, raw)
        # Explicit settings win, as in 0.6; unlike 0.6 (a copy-paste bug), set the HTTP one too.
        kwargs.setdefault("p2p_download_max_priority", converted)
        kwargs.setdefault("http_download_max_priority", converted)

    return LoaderConfig(**kwargs)


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------

PRESETS: Final[Mapping[str, LoaderConfig]] = MappingProxyType(
    {
        # P2P Media Loader 0.6.2's defaults.
        "p2pml-0.6-defaults": LoaderConfig(),
        # The FAQ: "The default configuration works best for live streams with 15-20 segments in the
        # playlist. The segments duration should be about 5 seconds." So this is the defaults too.
        "faq-live": LoaderConfig(),
        # The FAQ's VOD example ("tested in production for a VOD stream with segments 20 seconds
        # long each"), converted to seconds. tests/test_config.py checks it against the FAQ text.
        "faq-vod": LoaderConfig(
            forward_segment_count=50,
            cached_segment_expiration=86400.0,
            cached_segments_count=1000,
            required_segments_priority=3,
            http_download_max_priority=9,
            http_download_probability=0.06,
            http_download_probability_interval=1.0,
            http_download_probability_skip_if_no_peers=True,
            p2p_download_max_priority=50,
            http_failed_segment_timeout=1.0,
            simultaneous_p2p_downloads=20,
            simultaneous_http_downloads=3,
            http_download_initial_timeout=120.0,
            http_download_initial_timeout_per_segment=17.0,
            http_download_ranges=True,
        ),
    }
)
"""Named configurations for :meth:`LoaderConfig.preset`:

* ``"p2pml-0.6-defaults"``: P2P Media Loader 0.6.2's defaults (``== LoaderConfig()``).
* ``"faq-live"``: the FAQ's advice for live streams (15-20 segments of about 5 s in the playlist)
  is to keep the default configuration, so this equals the defaults.
* ``"faq-vod"``: exactly the FAQ's VOD example (20 s segments).
"""
