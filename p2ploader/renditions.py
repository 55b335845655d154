"""Choosing a variant's alternate renditions (``EXT-X-MEDIA`` audio and subtitles), as a player does,
and finding a variant by rendition id or index (:func:`find_variant`).

Pure functions over the playlist model (:mod:`p2ploader.hls`); the loader calls them when it starts
and when a rendition switch lands on a variant that names another group.

A choice (:data:`MediaChoice`) is one of:

* ``None``: automatic. Audio: the group's ``DEFAULT=YES`` rendition, else its first
  ``AUTOSELECT=YES`` one, else its first (hls.js's rule). Subtitles: the ``DEFAULT=YES`` rendition
  only; a group without one shows no subtitles (hls.js shows subtitles by default only then).
* ``True``: the automatic rule above for audio, also for subtitles (a rendition whenever the group
  has one).
* ``False``: none (the loader loads no rendition of that type).
* a string: a rendition id (``"a:aud:English"``, see :mod:`p2ploader.hls`), else a LANGUAGE
  (``"fr"``), else a NAME (``"Francais"``); language and name compare case-insensitively.

Only renditions with a URI count: one without (its media is muxed into the variant) has nothing
to load. A string that matches nothing raises :class:`~p2ploader.errors.RenditionNotFoundError`
listing the choices there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from p2ploader.errors import RenditionNotFoundError
from p2ploader.hls import AlternateRendition, MasterPlaylist, Variant

__all__ = [
    "MediaChoice",
    "MediaType",
    "audio_variant",
    "choose_alternate",
    "describe",
    "equivalent_in_group",
    "find_variant",
    "loadable",
]

MediaChoice = str | bool | None
"""What to load of one media type: see the module docstring."""

MediaType = Literal["AUDIO", "SUBTITLES"]


def _group_of(variant: Variant, media_type: MediaType) -> str | None:
    return variant.audio if media_type == "AUDIO" else variant.subtitles


def loadable(
    master: MasterPlaylist, variant: Variant, media_type: MediaType
) -> tuple[AlternateRendition, ...]:
    """The renditions of ``variant``'s group of ``media_type`` that have a URI, in playlist order."""
    group = _group_of(variant, media_type)
    if group is None:
        return ()
    return tuple(r for r in master.renditions_in_group(media_type, group) if r.url is not None)


def describe(rendition: AlternateRendition) -> str:
    """``a:aud:English (language en, name English)``: how error messages and listings name it."""
    language = f"language {rendition.language}, " if rendition.language else ""
    return f"{rendition.rendition_id} ({language}name {rendition.name})"


def _automatic(candidates: tuple[AlternateRendition, ...]) -> AlternateRendition:
    return (
        next((r for r in candidates if r.default), None)
        or next((r for r in candidates if r.autoselect), None)
        or candidates[0]
    )


def choose_alternate(
    master: MasterPlaylist, variant: Variant, media_type: MediaType, choice: MediaChoice
) -> AlternateRendition | None:
    """The rendition of ``variant``'s ``media_type`` group that ``choice`` picks, or None (nothing to
    load: ``False``, no such group, or automatic subtitles without a ``DEFAULT=YES`` rendition)."""
    if choice is False:
        return None
    candidates = loadable(master, variant, media_type)
    kind = "audio" if media_type == "AUDIO" else "subtitles"
    if isinstance(choice, str):
        wanted = choice.casefold()
        match = (
            next((r for r in candidates if r.rendition_id == choice), None)
            or next((r for r in candidates if (r.language or "").casefold() == wanted), None)
            or next((r for r in candidates if r.name.casefold() == wanted), None)
        )
        if match is not None:
            return match
        if not candidates:
            raise RenditionNotFoundError(
                f"no {kind} rendition {choice!r}: variant {variant.rendition_id} has no separate {kind}",
                wanted=choice,
                choices=(),
            )
        listing = "; ".join(describe(r) for r in candidates)
        raise RenditionNotFoundError(
            f"no {kind} rendition {choice!r} (by id, language or name) for variant "
            f"{variant.rendition_id}; there are {listing}",
            wanted=choice,
            choices=tuple(r.rendition_id for r in candidates),
        )
    if not candidates:
        return None
    if choice is None and media_type == "SUBTITLES":
        return next((r for r in candidates if r.default), None)
    return _automatic(candidates)


def equivalent_in_group(
    master: MasterPlaylist, variant: Variant, media_type: MediaType, current: AlternateRendition
) -> AlternateRendition | None:
    """After a switch to ``variant``: ``current`` if its group still applies, else the rendition of
    the new group with the same language and name, the same language, the same name, or else the
    automatic choice (None when the new variant has no such group)."""
    candidates = loadable(master, variant, media_type)
    if not candidates:
        return None
    if current in candidates:
        return current
    same = (
        next((r for r in candidates if r.language == current.language and r.name == current.name), None)
        or next((r for r in candidates if current.language and r.language == current.language), None)
        or next((r for r in candidates if r.name == current.name), None)
    )
    return same or _automatic(candidates)


def audio_variant(master: MasterPlaylist, rendition_id: str) -> Variant | None:
    """The first variant whose audio group holds the AUDIO rendition ``rendition_id`` (so that
    ``rendition="a:aud:English"`` means "a variant with that audio"), or None."""
    rendition = master.rendition_by_id(rendition_id)
    if rendition is None or rendition.type != "AUDIO":
        return None
    return next((v for v in master.variants if v.audio == rendition.group_id), None)


def find_variant(variants: Sequence[Variant], rendition: str | int) -> Variant:
    """The variant of ``variants`` (a master playlist's) that ``rendition`` names: an index, or a
    rendition id (``"v1"``). Raises :class:`~p2ploader.errors.RenditionNotFoundError` naming the
    choices otherwise. The loader's and the low-latency stream's ``select_rendition`` share it."""
    if isinstance(rendition, int):
        if not 0 <= rendition < len(variants):
            raise RenditionNotFoundError(
                f"rendition index {rendition} out of range (0..{len(variants) - 1})",
                wanted=str(rendition),
                choices=tuple(v.rendition_id for v in variants),
            )
        return variants[rendition]
    for variant in variants:
        if variant.rendition_id == rendition:
            return variant
    names = ", ".join(v.rendition_id for v in variants)
    raise RenditionNotFoundError(
        f"no rendition {rendition!r}; the stream has {names}",
        wanted=rendition,
        choices=tuple(v.rendition_id for v in variants),
    )
