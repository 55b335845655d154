"""MkDocs hooks: generate the configuration and CLI reference pages from the code.

``mkdocs.yml`` loads this file with ``hooks: [docs/hooks.py]``. Two pages are generated from the code
and committed (so that links to them also work when reading docs/ in the repository);
``python docs/hooks.py`` rewrites them, and on every build :func:`on_files` fails if a committed page
differs from what the code generates now. Nothing is fetched from the network:

* ``configuration-reference.md`` from :class:`p2ploader.config.LoaderConfig` itself
  (:func:`config_reference_markdown`): every attrs field with its Python name, its FAQ-style name,
  type, default, unit and attribute docstring. Attribute docstrings do not exist at runtime, so
  they are read from the source with :mod:`ast`. A field without one fails the build
  (:class:`MissingDocstringError`), so the reference cannot fall out of step with the code.
* ``cli-reference.md`` from :func:`p2ploader.app.cli.build_parser` (:func:`cli_reference_markdown`):
  the top-level help and the help of every subcommand, found by walking the parser.

The generators are plain functions of their inputs (a class and its module source, a parser), so
``tests/test_docs.py`` calls them directly.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

__all__ = [
    "CLI_PAGE",
    "CONFIG_PAGE",
    "FaqName",
    "FieldDoc",
    "MissingDocstringError",
    "cli_reference_markdown",
    "config_reference_markdown",
    "field_docs",
    "format_default",
    "generated_pages",
    "iter_commands",
    "loader_config_faq_names",
    "on_files",
    "rst_to_markdown",
    "stale_pages",
    "unit_of",
    "write_pages",
]

CONFIG_PAGE = "configuration-reference.md"
CLI_PAGE = "cli-reference.md"

#: Help text is wrapped at this width, whatever the terminal running the build is.
HELP_COLUMNS = 100


class MissingDocstringError(ValueError):
    """A documented class has fields without an attribute docstring."""

    def __init__(self, class_name: str, fields: Sequence[str]) -> None:
        names = ", ".join(fields)
        super().__init__(
            f"{class_name}: no attribute docstring for {names}. Every field needs a string literal "
            "right after its assignment; the configuration reference is generated from them."
        )
        self.class_name = class_name
        self.fields = tuple(fields)


# --------------------------------------------------------------------------------------------------
# Reading attribute docstrings from the source
# --------------------------------------------------------------------------------------------------


@attrs.frozen
class FieldDoc:
    """What the source says about one annotated class attribute."""

    name: str
    annotation: str
    docstring: str | None
    section: str | None  # the ``# --- title ---`` comment the field sits under, if any


_SECTION_COMMENT = re.compile(r"^\s*#\s*-{2,}\s*(?P<title>.*?)\s*-*\s*$")


def _find_class(tree: ast.AST, class_name: str) -> ast.ClassDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return node
    raise LookupError(f"class {class_name} is not defined in the given source")


def field_docs(source: str, class_name: str) -> dict[str, FieldDoc]:
    """The annotated attributes of ``class_name`` in ``source``, in order, with their docstrings.

    An attribute docstring is a string expression statement right after the annotated assignment
    (the convention Sphinx and PEP 257 use); it is ``None`` when there is none. ``section`` is the
    title of the last ``# --- title ---`` comment above the field inside the class body.
    """
    tree = ast.parse(source)
    cls = _find_class(tree, class_name)
    lines = source.splitlines()
    end = cls.end_lineno or len(lines)
    sections: list[tuple[int, str]] = []
    for lineno in range(cls.lineno, end + 1):
        match = _SECTION_COMMENT.match(lines[lineno - 1])
        if match and match.group("title"):
            sections.append((lineno, match.group("title")))

    docs: dict[str, FieldDoc] = {}
    body = cls.body
    for index, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        docstring = None
        following = body[index + 1] if index + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docstring = inspect.cleandoc(following.value.value)
        section = None
        for lineno, title in sections:
            if lineno < node.lineno:
                section = title
        docs[node.target.id] = FieldDoc(
            name=node.target.id,
            annotation=ast.unparse(node.annotation),
            docstring=docstring,
            section=section,
        )
    return docs


# --------------------------------------------------------------------------------------------------
# Small Markdown helpers
# --------------------------------------------------------------------------------------------------

_RST_ROLE = re.compile(r":(?:meth|func|class|attr|data|mod|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")
_RST_LITERAL = re.compile(r"``(?P<text>[^`]+)``")


def rst_to_markdown(text: str) -> str:
    """Docstring reST to Markdown: ``literal`` and :role:`~a.b.name` become `literal` and `name`."""

    def role(match: re.Match[str]) -> str:
        target = match.group("target")
        if match.group("tilde"):
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    return _RST_LITERAL.sub(r"`\g<text>`", _RST_ROLE.sub(role, text))


def _code(text: str) -> str:
    """``text`` as an inline code span, with a longer fence if it contains backticks."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _plain(value: object) -> object:
    """JSON-friendly copy of read-only mappings and tuples (for showing defaults)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def format_default(value: object) -> str:
    """A field default as Python source text (mappings as JSON-like dict literals)."""
    if value is attrs.NOTHING:
        return "required"
    factory = getattr(value, "factory", None)  # attrs.Factory(...): shown as the call
    if callable(factory):
        return f"{getattr(factory, '__qualname__', repr(factory))}()"
    if isinstance(value, Mapping):
        return json.dumps(_plain(value))
    return repr(value)


_UNIT_LEADS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Seconds\b"), "seconds"),
    (re.compile(r"^Bytes per second\b"), "bytes/s"),
    (re.compile(r"^Bytes\b"), "bytes"),
    (re.compile(r"^Priority\b"), "priority (segments from the playhead)"),
    (re.compile(r"^Probability\b"), "probability"),
    (re.compile(r"^Segments\b"), "segments"),
)
_UNIT_WORDS = re.compile(r"\b(segments|downloads|peers|attempts|reloads)\b", re.IGNORECASE)


def unit_of(doc: str, *, seconds: bool = False) -> str:
    """The unit of a field, read from its docstring: the leading word (``Seconds.``, ``Priority.``),
    else a counted noun in the first sentence (``How many segments ...``); ``—`` when neither."""
    if seconds:
        return "seconds (FAQ: milliseconds)"
    for pattern, unit in _UNIT_LEADS:
        if pattern.search(doc):
            return unit
    first_sentence = re.split(r"(?<=[.;])\s", doc, maxsplit=1)[0]
    match = _UNIT_WORDS.search(first_sentence)
    return match.group(1).lower() if match else "—"


# --------------------------------------------------------------------------------------------------
# The configuration reference
# --------------------------------------------------------------------------------------------------


@attrs.frozen
class FaqName:
    """A FAQ-style spelling of a field: ``block.name`` (``segments`` or ``loader``) and its unit."""

    name: str
    block: str
    milliseconds: bool
    alias: bool = False


def loader_config_faq_names() -> dict[str, list[FaqName]]:
    """Field name -> its FAQ-style names (the one ``to_faq()`` writes first, then aliases).

    Read-only use of ``p2ploader.config._FAQ_KEYS``, the table ``from_faq`` and ``to_faq`` use.
    """
    from p2ploader import config

    names: dict[str, list[FaqName]] = {}
    for spec in config._FAQ_KEYS.values():
        entry = FaqName(spec.name, spec.block, spec.kind == "ms", alias=not spec.emit)
        names.setdefault(spec.field, []).append(entry)
    for entries in names.values():
        entries.sort(key=lambda e: e.alias)
    return names


def _faq_defaults(cls: type) -> dict[tuple[str, str], object]:
    """``(block, name) -> value`` of the default instance in the FAQ spelling, if ``cls`` has one."""
    to_faq = getattr(cls, "to_faq", None)
    if to_faq is None:
        return {}
    try:
        faq = cls().to_faq()
    except Exception:  # a class that needs arguments has no default instance to show
        return {}
    return {(block, name): value for block, values in faq.items() for name, value in values.items()}


def _slug(name: str) -> str:
    """An anchor id: lower case, spaces to ``-``; underscores stay, so a field's anchor is its name."""
    return re.sub(r"\s+", "-", name.strip().lower())


def config_reference_markdown(
    cls: type | None = None,
    *,
    source: str | None = None,
    faq_names: Mapping[str, Sequence[FaqName]] | None = None,
    title: str = "Configuration reference",
) -> str:
    """The configuration reference page of an attrs class (default: ``LoaderConfig``).

    ``source`` is the text of the module defining ``cls`` (default: read with :mod:`inspect`);
    ``faq_names`` maps field names to their FAQ-style names (default: the ``LoaderConfig`` table
    when ``cls`` is ``LoaderConfig``, else none). Raises :class:`MissingDocstringError` when a
    field has no attribute docstring, and :class:`LookupError` when a field is missing from the
    source.
    """
    if cls is None:
        from p2ploader.config import LoaderConfig

        cls = LoaderConfig
    if source is None:
        source = inspect.getsource(sys.modules[cls.__module__])
    if faq_names is None:
        from p2ploader.config import LoaderConfig

        faq_names = loader_config_faq_names() if cls is LoaderConfig else {}

    fields = attrs.fields(cls)
    docs = field_docs(source, cls.__name__)
    not_in_source = [f.name for f in fields if f.name not in docs]
    if not_in_source:
        raise LookupError(f"{cls.__name__}: fields not found in the source: {', '.join(not_in_source)}")
    undocumented = [f.name for f in fields if not docs[f.name].docstring]
    if undocumented:
        raise MissingDocstringError(cls.__name__, undocumented)
    faq_defaults = _faq_defaults(cls)
    qualified = f"{cls.__module__}.{cls.__qualname__}"

    out: list[str] = [
        f"# {title}",
        "",
        '!!! info "Generated from the code"',
        f"    This page is generated at build time from `{qualified}` by `docs/hooks.py`: the "
        "field list, types and defaults come from the class, the descriptions from the fields' "
        "docstrings. Every field is listed; a field without a docstring fails the docs build.",
        "",
    ]
    if faq_names:
        out += [
            "In Python (`LoaderConfig(...)`, `evolve(...)`) names are `snake_case` and times are in "
            "**seconds**. In the FAQ spelling (`from_faq`, `from_faq_text`, `to_faq`) names are "
            "`camelCase` and times are in **milliseconds**. The [configuration guide]"
            "(configuration.md) explains FAQ parsing, validation errors and presets.",
            "",
        ]
    out += ["| Python name | FAQ name | Type | Default | Unit |", "|---|---|---|---|---|"]
    for field in fields:
        doc = docs[field.name]
        names = faq_names.get(field.name, ())
        faq = " / ".join(_code(n.name) for n in names) or "—"
        default = format_default(field.default)
        shown = _code(default) if len(default) <= 40 else f"[see below](#{_slug(field.name)})"
        seconds = any(n.milliseconds for n in names)
        unit = unit_of(doc.docstring or "", seconds=seconds)
        out.append(
            f"| [{_code(field.name)}](#{_slug(field.name)}) | {faq} | {_code(doc.annotation)} "
            f"| {shown} | {unit} |"
        )
    out.append("")

    section: str | None = None
    for field in fields:
        doc = docs[field.name]
        if doc.section is not None and doc.section != section:
            section = doc.section
            heading = rst_to_markdown(section)
            out += [f"## {heading[:1].upper()}{heading[1:]}", ""]
        names = faq_names.get(field.name, ())
        seconds = any(n.milliseconds for n in names)
        default = format_default(field.default)
        out += [f"### {_code(field.name)} {{ #{_slug(field.name)} }}", ""]
        rows: list[tuple[str, str]] = []
        for entry in names:
            label = "FAQ alias" if entry.alias else "FAQ name"
            unit = " (milliseconds)" if entry.milliseconds else ""
            rows.append((label, f"{_code(entry.name)} in the `{entry.block}` block{unit}"))
        rows.append(("Type", _code(doc.annotation)))
        default_cell = _code(default)
        primary = next((n for n in names if not n.alias), None)
        if primary is not None and (primary.block, primary.name) in faq_defaults:
            faq_value = json.dumps(faq_defaults[(primary.block, primary.name)])
            if faq_value != default:
                default_cell += f" (FAQ: {_code(faq_value)})"
        rows.append(("Default", default_cell))
        rows.append(("Unit", unit_of(doc.docstring or "", seconds=seconds)))
        out += [f"- **{label}:** {value}" for label, value in rows]
        out += ["", rst_to_markdown(doc.docstring or ""), ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------
# The CLI reference
# --------------------------------------------------------------------------------------------------


def iter_commands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """``(path, parser, one-line help)`` for ``parser`` and, depth first, every subcommand.

    ``path`` is ``()`` for the top level, ``("demo",)`` for ``p2ploader demo``, and so on. Aliases
    of a subcommand are listed once, under their first name.
    """
    seen: set[int] = set()

    def walk(
        current: argparse.ArgumentParser, path: tuple[str, ...], summary: str | None
    ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
        seen.add(id(current))
        yield path, current, summary
        for action in current._actions:
            if not isinstance(action, argparse._SubParsersAction):
                continue
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if id(sub) in seen:
                    continue
                yield from walk(sub, (*path, name), helps.get(name))

    yield from walk(parser, (), None)


@contextlib.contextmanager
def _stable_help_environment() -> Iterator[None]:
    """Wrap help at :data:`HELP_COLUMNS` and without colour, whatever the terminal."""
    wanted = {"COLUMNS": str(HELP_COLUMNS), "NO_COLOR": "1", "PYTHON_COLORS": "0"}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli_reference_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The CLI reference page: ``format_help()`` of ``parser`` (default: ``p2ploader.app.cli``'s) and of
    every subcommand, each under its own heading."""
    if parser is None:
        from p2ploader.app.cli import build_parser

        parser = build_parser()
    commands = list(iter_commands(parser))
    out: list[str] = [
        "# CLI reference",
        "",
        '!!! info "Generated from the code"',
        "    This page is generated at build time from `p2ploader.app.cli.build_parser()` by "
        "`docs/hooks.py`: each section is the command's own `--help` output, so every subcommand "
        "is documented as it is.",
        "",
    ]
    subcommands = [(path, summary) for path, _, summary in commands if path]
    if subcommands:
        out += ["| command | what it does |", "|---|---|"]
        for path, summary in subcommands:
            prog = " ".join((parser.prog, *path))
            out.append(f"| [{_code(prog)}](#{_slug('-'.join((parser.prog, *path)))}) | {summary or ''} |")
        out.append("")
    with _stable_help_environment():
        for path, command, _ in commands:
            prog = " ".join((parser.prog, *path))
            anchor = _slug("-".join((parser.prog, *path)))
            help_text = command.format_help().rstrip()
            out += [f"## {_code(prog)} {{ #{anchor} }}", "", "```text", help_text, "```", ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------
# MkDocs hooks
# --------------------------------------------------------------------------------------------------


GENERATED_NOTE = (
    "<!-- Generated from the code by docs/hooks.py: do not edit. Regenerate with"
    " `python docs/hooks.py` after changing LoaderConfig or the CLI. -->\n\n"
)


def generated_pages() -> dict[str, str]:
    """Every generated page: ``{path relative to docs/: Markdown}``."""
    return {
        CONFIG_PAGE: GENERATED_NOTE + config_reference_markdown(),
        CLI_PAGE: GENERATED_NOTE + cli_reference_markdown(),
    }


def stale_pages(docs_dir: str) -> list[str]:
    """The generated pages missing from ``docs_dir`` or differing from what the code generates now.

    The pages are committed so that links to them work when reading docs/ in the repository; this
    check keeps them true to the code."""
    stale = []
    for path, content in generated_pages().items():
        target = os.path.join(docs_dir, path)
        try:
            with open(target, encoding="utf-8") as committed:
                if committed.read() == content:
                    continue
        except FileNotFoundError:
            pass
        stale.append(path)
    return stale


def write_pages(docs_dir: str) -> list[str]:
    """Write every generated page into ``docs_dir``; the paths written."""
    written = []
    for path, content in generated_pages().items():
        with open(os.path.join(docs_dir, path), "w", encoding="utf-8", newline="\n") as out:
            out.write(content)
        written.append(path)
    return written


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Check that the committed generated pages match the code; the build fails otherwise."""
    from mkdocs.exceptions import PluginError

    try:
        stale = stale_pages(config.docs_dir)
    except (MissingDocstringError, LookupError) as exc:
        raise PluginError(f"docs/hooks.py: {exc}") from exc
    if stale:
        names = ", ".join(f"docs/{path}" for path in stale)
        raise PluginError(f"{names} out of date with the code: regenerate with `python docs/hooks.py`")
    return files


if __name__ == "__main__":
    for written in write_pages(os.path.dirname(os.path.abspath(__file__))):
        print(f"wrote docs/{written}")
