"""The blocking-reload URL of LL-HLS (RFC 8216bis §6.2.5.2)."""

from __future__ import annotations

import pytest

from p2ploader.errors import UsageError
from p2ploader.hls import blocking_reload_url


def test_directives_follow_the_existing_query_in_the_rfc_order() -> None:
    url = blocking_reload_url("https://cdn.example/v0/index.m3u8?token=a%20b", msn=41, part=3, skip="YES")
    assert url == "https://cdn.example/v0/index.m3u8?token=a+b&_HLS_msn=41&_HLS_part=3&_HLS_skip=YES"


def test_old_directives_are_replaced_not_repeated() -> None:
    url = blocking_reload_url("http://h/i.m3u8?_HLS_msn=1&_HLS_part=0&x=1&_HLS_skip=v2", msn=2)
    assert url == "http://h/i.m3u8?x=1&_HLS_msn=2"


@pytest.mark.parametrize(("msn", "part", "skip"), [(-1, None, None), (1, -1, None), (1, None, "yes")])
def test_bad_directives_are_usage_errors(msn: int, part: int | None, skip: str | None) -> None:
    with pytest.raises(UsageError):
        blocking_reload_url("http://h/i.m3u8", msn=msn, part=part, skip=skip)  # type: ignore[arg-type]
