"""The generated reference pages (docs/hooks.py) cover the code, and the hand-written references
name every statistic and notification."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import attrs
import pytest

from p2ploader.aio.loader import LoaderStatistics
from p2ploader.app.cli import build_parser
from p2ploader.config import LoaderConfig
from p2ploader.core import notifications

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("p2ploader_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs classes in the module need it while being defined
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


# --------------------------------------------------------------------------------------------------
# CLI reference
# --------------------------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_cli_page_documents_every_subcommand() -> None:
    page = hooks.cli_reference_markdown()
    subcommands = _subcommands(build_parser())
    assert subcommands  # demo, play, origin, tracker, ...
    for name, parser in subcommands.items():
        assert f"## `p2ploader {name}` {{ #p2ploader-{name} }}" in page
        assert f"usage: p2ploader {name}" in page
        # Every option of the subcommand is in its help text.
        for action in parser._actions:
            for option in action.option_strings:
                assert option in page, (name, option)
    assert "usage: p2ploader [-h]" in page


def test_cli_page_walks_nested_subcommands() -> None:
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command")
    outer = sub.add_parser("outer", help="the outer command")
    inner = outer.add_subparsers(dest="inner").add_parser("inner", help="the inner command")
    inner.add_argument("--flag", help="a flag of the inner command")

    paths = [path for path, _, _ in hooks.iter_commands(parser)]
    assert paths == [(), ("outer",), ("outer", "inner")]
    page = hooks.cli_reference_markdown(parser)
    assert "## `tool outer inner` { #tool-outer-inner }" in page
    assert "a flag of the inner command" in page
    assert "| [`tool outer`](#tool-outer) | the outer command |" in page


# --------------------------------------------------------------------------------------------------
# Configuration reference
# --------------------------------------------------------------------------------------------------


def test_config_page_documents_every_field_with_its_default() -> None:
    page = hooks.config_reference_markdown()
    faq_names = hooks.loader_config_faq_names()
    for field in attrs.fields(LoaderConfig):
        assert f"### `{field.name}` {{ #{field.name} }}" in page, field.name
        default = hooks.format_default(field.default)
        assert f"**Default:** `{default}`" in page, field.name
        for faq in faq_names[field.name]:
            assert f"`{faq.name}`" in page
    # Spot checks of the rendering.
    assert "**Default:** `300.0` (FAQ: `300000`)" in page  # cached_segment_expiration, seconds vs ms
    assert "`httpDownloadRanges` / `httpUseRanges`" in page  # the primary name, then the alias
    assert "## Player glue (the FAQ's `segments:` block)" in page  # sections from the source comments


def test_every_loader_config_field_has_a_faq_name() -> None:
    faq_names = hooks.loader_config_faq_names()
    assert {f.name for f in attrs.fields(LoaderConfig)} == set(faq_names)


def test_docstrings_are_read_from_the_source() -> None:
    source = inspect.getsource(sys.modules[LoaderConfig.__module__])
    docs = hooks.field_docs(source, "LoaderConfig")
    assert list(docs) == [f.name for f in attrs.fields(LoaderConfig)]
    assert docs["use_p2p"].docstring is not None
    assert docs["use_p2p"].docstring.startswith("``False``: no peer id")
    assert docs["rtc_config"].annotation == "Mapping[str, Any]"


FAKE_SOURCE = textwrap.dedent(
    '''
    @attrs.frozen
    class Fake:
        # --- timing ---
        delay: float = 1.5
        """Seconds to wait."""

        retries: int = 3
        """Attempts. Uses :class:`~pkg.mod.Thing` and ``literal``."""
    '''
)


@attrs.frozen
class Fake:
    delay: float = 1.5
    retries: int = 3


def test_generator_takes_any_attrs_class_and_its_source() -> None:
    page = hooks.config_reference_markdown(Fake, source=FAKE_SOURCE, faq_names={}, title="Fake settings")
    assert page.startswith("# Fake settings\n")
    assert "## Timing" in page
    assert "**Default:** `1.5`" in page and "**Default:** `3`" in page
    assert "Seconds to wait." in page
    assert "Uses `Thing` and `literal`." in page
    assert "| seconds |" in page  # the unit, from the docstring's leading word


def test_generator_raises_on_a_field_without_docstring() -> None:
    source = FAKE_SOURCE.replace('    """Attempts. Uses :class:`~pkg.mod.Thing` and ``literal``."""\n', "")
    with pytest.raises(hooks.MissingDocstringError, match="retries") as info:
        hooks.config_reference_markdown(Fake, source=source, faq_names={})
    assert info.value.fields == ("retries",)


def test_generator_raises_on_a_field_missing_from_the_source() -> None:
    source = FAKE_SOURCE.split("    retries")[0]
    with pytest.raises(LookupError, match="retries"):
        hooks.config_reference_markdown(Fake, source=source, faq_names={})


# --------------------------------------------------------------------------------------------------
# Hand-written references stay complete
# --------------------------------------------------------------------------------------------------


def test_statistics_page_names_every_field_and_notification() -> None:
    page = (DOCS / "statistics.md").read_text(encoding="utf-8")
    for field in attrs.fields(LoaderStatistics):
        assert f"| `{field.name}` |" in page, field.name
    for prop in ("total_bytes", "peer_efficiency"):
        assert f"| `{prop}` |" in page
    kinds = [n for n in notifications.__all__ if n not in ("Notification", "Source")]
    assert kinds
    for name in kinds:
        assert f"### {name}\n" in page, name
        for field in attrs.fields(getattr(notifications, name)):
            section = page.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
            assert f"| `{field.name}` |" in section, (name, field.name)


def test_generated_pages_are_committed_and_match_the_code() -> None:
    # Committed so that links to them work when reading docs/ in the repository; the build and
    # this test fail when the code changed and `python docs/hooks.py` was not run.
    assert hooks.stale_pages(str(DOCS)) == []
    for name in (hooks.CONFIG_PAGE, hooks.CLI_PAGE):
        assert (DOCS / name).read_text(encoding="utf-8").startswith(hooks.GENERATED_NOTE)


def test_a_stale_generated_page_is_reported(tmp_path: Path) -> None:
    assert hooks.write_pages(str(tmp_path)) == [hooks.CONFIG_PAGE, hooks.CLI_PAGE]
    assert hooks.stale_pages(str(tmp_path)) == []
    page = tmp_path / hooks.CLI_PAGE
    page.write_text(page.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    (tmp_path / hooks.CONFIG_PAGE).unlink()
    assert hooks.stale_pages(str(tmp_path)) == [hooks.CONFIG_PAGE, hooks.CLI_PAGE]


def _relative_links(page: Path) -> list[str]:
    """Targets of the Markdown links in ``page`` that point into the repository (no scheme, no
    pure anchors), without their anchors; fenced code blocks are skipped."""
    import re

    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#", 1)[0] for t in targets if "://" not in t and not t.startswith(("#", "mailto:"))]


def test_every_link_in_docs_and_the_readme_resolves_in_the_repository() -> None:
    # What a reader of docs/ on a code host follows: each relative link must name a committed file.
    pages = [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = [
        f"{page.relative_to(DOCS.parent)} -> {target}"
        for page in pages
        for target in _relative_links(page)
        if target and not (page.parent / target).exists()
    ]
    assert broken == []
    assert "configuration-reference.md" in _relative_links(DOCS / "index.md")


# --------------------------------------------------------------------------------------------------
# The library snippet of the README and the quick start runs as written
# --------------------------------------------------------------------------------------------------

ROOT = DOCS.parent
SNIPPET_URL = "https://example.com/master.m3u8"


def library_snippet(page: Path, heading: str) -> str:
    """The first ```python block after ``heading`` in ``page``."""
    text = page.read_text(encoding="utf-8")
    after = text[text.index(heading) :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```", start)]


@pytest.mark.parametrize(
    ("page", "heading"),
    [(ROOT / "README.md", "## Using the library"), (DOCS / "quickstart.md", "## Use the library")],
    ids=["README", "quickstart"],
)
def test_library_snippet_runs_against_the_local_origin(page: Path, heading: str, tmp_path: Path) -> None:
    import subprocess

    from p2ploader.hls import parse_media, parse_playlist
    from p2ploader.sample import sample_path
    from p2ploader.testing.origin import OriginServer

    snippet = library_snippet(page, heading)
    assert snippet.count(SNIPPET_URL) == 1
    assert "0 % P2P" in snippet  # the pacing note
    with OriginServer(sample_path("ts")) as origin:
        url = origin.url_for("master.m3u8")
        code = snippet.replace(SNIPPET_URL, url)  # the only change: the example URL
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        # The bytes written are the first variant's segments, in order, exactly as served.
        import httpx

        variant = parse_playlist(httpx.get(url).text, url).variants[0]
        playlist = parse_media(httpx.get(variant.url).text, variant.url, rendition=variant.rendition_id)
        expected = b"".join(httpx.get(segment.url).content for segment in playlist.segments)
    assert (tmp_path / "stream.ts").read_bytes() == expected
    assert "LoaderStatistics(" in run.stdout


KEEP_A_CHANGELOG_SECTIONS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")


def test_changelog_has_only_keep_a_changelog_headings() -> None:
    """Release headings (``## [Unreleased]``, ``## [x.y.z] - date``, each once), then only the six
    section names, each at most once a release; no bare section name or setext heading: anything
    else is text pasted in by mistake."""
    changelog = (DOCS.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    seen: set[str] = set()
    releases: set[str] = set()
    for number, line in enumerate(changelog.splitlines(), start=1):
        assert line.strip() not in KEEP_A_CHANGELOG_SECTIONS, f"CHANGELOG.md:{number}: a bare {line!r}"
        assert not line.startswith(("===", "---")), f"CHANGELOG.md:{number}: a setext heading"
        if line.startswith("## "):
            assert line not in releases, f"CHANGELOG.md:{number}: {line!r} a second time"
            releases.add(line)
            assert line.startswith("## ["), f"CHANGELOG.md:{number}: not a release heading: {line!r}"
            seen = set()
        elif line.startswith("#") and not line.startswith("# Changelog"):
            section = line.removeprefix("### ")
            assert line.startswith("### ") and section in KEEP_A_CHANGELOG_SECTIONS, (
                f"CHANGELOG.md:{number}: not a Keep a Changelog section: {line!r}"
            )
            assert section not in seen, f"CHANGELOG.md:{number}: a second {section!r} in one release"
            seen.add(section)
