"""Choosing a variant's EXT-X-MEDIA audio and subtitles renditions (pure; no network)."""

from __future__ import annotations

import pytest

from p2ploader.errors import RenditionNotFoundError, UsageError
from p2ploader.hls import MasterPlaylist, parse_master
from p2ploader.renditions import audio_variant, choose_alternate, equivalent_in_group
from tests.ffmpeg_streams import MASTER

URL = "https://cdn.example.com/show/master.m3u8"


def master(text: str = MASTER) -> MasterPlaylist:
    return parse_master(text, URL)


def _two_groups() -> MasterPlaylist:
    return master(
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="lo",NAME="English",LANGUAGE="en",DEFAULT=YES,URI="lo/en.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="lo",NAME="Deutsch",LANGUAGE="de",URI="lo/de.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="hi",NAME="English",LANGUAGE="en",DEFAULT=YES,URI="hi/en.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="hi",NAME="Deutsch",LANGUAGE="de",URI="hi/de.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="mux",NAME="Main",DEFAULT=YES\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=300000,AUDIO="lo"\nlo.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=900000,AUDIO="hi"\nhi.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1200000,AUDIO="mux"\nmux.m3u8\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=100000\nnone.m3u8\n"
    )


@pytest.mark.parametrize("choice", ["a:aud:Francais", "fr", "FR", "Francais", "francais"])
def test_audio_by_id_language_or_name(choice: str) -> None:
    m = master()
    chosen = choose_alternate(m, m.variants[0], "AUDIO", choice)
    assert chosen is not None and chosen.rendition_id == "a:aud:Francais"
    assert chosen.url == "https://cdn.example.com/show/audio_fr/index.m3u8"


def test_automatic_audio_is_the_default_rendition() -> None:
    m = master()
    for choice in (None, True):
        chosen = choose_alternate(m, m.variants[0], "AUDIO", choice)
        assert chosen is not None and chosen.rendition_id == "a:aud:English"
    assert choose_alternate(m, m.variants[0], "AUDIO", False) is None


def test_without_default_the_first_autoselect_then_the_first() -> None:
    no_default = MASTER.replace("DEFAULT=YES,AUTOSELECT=YES", "DEFAULT=NO,AUTOSELECT=NO")
    m = master(no_default)
    chosen = choose_alternate(m, m.variants[0], "AUDIO", None)
    assert chosen is not None and chosen.rendition_id == "a:aud:Francais"  # the first AUTOSELECT
    m = master(no_default.replace("DEFAULT=NO,AUTOSELECT=YES", "DEFAULT=NO,AUTOSELECT=NO"))
    chosen = choose_alternate(m, m.variants[0], "AUDIO", None)
    assert chosen is not None and chosen.rendition_id == "a:aud:English"  # the first


def test_automatic_subtitles_only_when_a_rendition_is_default() -> None:
    m = master()
    assert choose_alternate(m, m.variants[0], "SUBTITLES", None) is None  # DEFAULT=NO
    chosen = choose_alternate(m, m.variants[0], "SUBTITLES", True)
    assert chosen is not None and chosen.rendition_id == "s:subs:English"
    m = master(
        MASTER.replace('NAME="English",LANGUAGE="en",DEFAULT=NO', 'NAME="English",LANGUAGE="en",DEFAULT=YES')
    )
    chosen = choose_alternate(m, m.variants[0], "SUBTITLES", None)
    assert chosen is not None and chosen.rendition_id == "s:subs:English"


def test_an_unknown_choice_is_a_typed_error_listing_the_choices() -> None:
    m = master()
    with pytest.raises(RenditionNotFoundError) as caught:
        choose_alternate(m, m.variants[0], "AUDIO", "de")
    error = caught.value
    assert isinstance(error, UsageError)
    assert error.wanted == "de" and error.choices == ("a:aud:English", "a:aud:Francais")
    assert "a:aud:Francais (language fr, name Francais)" in str(error)
    with pytest.raises(RenditionNotFoundError, match="subtitles rendition 'fr'"):
        choose_alternate(m, m.variants[0], "SUBTITLES", "fr")


def test_a_variant_without_the_group_has_nothing_to_choose() -> None:
    m = _two_groups()
    plain = m.variants[3]
    assert choose_alternate(m, plain, "AUDIO", None) is None
    with pytest.raises(RenditionNotFoundError, match="has no separate audio") as caught:
        choose_alternate(m, plain, "AUDIO", "en")
    assert caught.value.choices == ()
    # A group whose rendition has no URI is muxed into the variant: nothing to load either.
    assert choose_alternate(m, m.variants[2], "AUDIO", None) is None


def test_a_switch_keeps_the_language_in_the_new_group() -> None:
    m = _two_groups()
    german_lo = choose_alternate(m, m.variants[0], "AUDIO", "de")
    assert german_lo is not None and german_lo.rendition_id == "a:lo:Deutsch"
    assert equivalent_in_group(m, m.variants[0], "AUDIO", german_lo) == german_lo
    german_hi = equivalent_in_group(m, m.variants[1], "AUDIO", german_lo)
    assert german_hi is not None and german_hi.rendition_id == "a:hi:Deutsch"
    assert equivalent_in_group(m, m.variants[2], "AUDIO", german_lo) is None  # muxed audio
    assert equivalent_in_group(m, m.variants[3], "AUDIO", german_lo) is None  # no group


def test_an_audio_rendition_id_names_a_variant_of_its_group() -> None:
    m = _two_groups()
    variant = audio_variant(m, "a:hi:Deutsch")
    assert variant is not None and variant.rendition_id == "v1"
    assert audio_variant(m, "v0") is None and audio_variant(m, "a:nope:x") is None
