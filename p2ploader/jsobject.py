"""The JavaScript object-literal parser behind :meth:`p2ploader.config.LoaderConfig.from_faq_text`.

P2P Media Loader's FAQ writes its settings as a JavaScript object literal, not JSON (comments,
unquoted keys, single quotes, trailing commas). :func:`parse_js_object` reads the subset the FAQ
uses, and evaluates nothing::

    value  := object | array | string | number | true | false | null | undefined
    object := "{" [ member { "," member } [ "," ] ] "}"
    member := (identifier | string | number) ":" value
    array  := "[" [ value { "," value } [ "," ] ] "]"
    number := [ "+" | "-" ] decimal | hex | octal | binary   (with JS "_" digit separators)

plus ``//`` and ``/* */`` comments. The top level may omit its braces (the FAQ example does).
``null`` and ``undefined`` become ``None``, which ``from_faq`` treats as "not set". Every syntax
error is a :class:`~p2ploader.errors.ConfigError` giving its line and column; nesting deeper than
64 levels is refused (so a hostile text cannot exhaust the stack).

The parser knows nothing of settings: what the keys mean is :mod:`p2ploader.config`'s job.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from p2ploader.errors import ConfigError

__all__ = ["parse_js_object", "same_value"]


def parse_js_object(text: str) -> dict[str, object]:
    """The object literal ``text`` (outer braces optional) as a dict of plain Python values:
    objects become dicts, arrays lists, ``null``/``undefined`` ``None``. Raises
    :class:`~p2ploader.errors.ConfigError` with the line and column of the first syntax error."""
    return _JsObjectParser(text).parse()


def same_value(a: object, b: object) -> bool:
    """Whether two parsed values are the same JavaScript value: ``true`` is not ``1`` (Python's
    ``True == 1`` would say it is). Used for keys given twice, which must agree."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _join_surrogates(value: str) -> str:
    """Combine UTF-16 surrogate pairs written as two escapes (``"\\ud83d\\ude00"``, as
    ``json.dumps`` writes astral characters) into one character; lone surrogates stay as they are."""
    if not any("\ud800" <= char <= "\udfff" for char in value):
        return value
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


@attrs.frozen
class _Token:
    kind: str  # "punct", "string", "number", "ident", "eof"
    value: object
    pos: int  # offset in the text, for line/column in error messages

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of input"
        if self.kind == "punct":
            return repr(self.value)
        if self.kind == "string":
            return f"string {self.value!r}"
        return f"{self.kind} {self.value!r}"


_PUNCTUATION: Final = frozenset("{}[]:,+-")
_DECIMAL: Final = frozenset("0123456789")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_DIGITS = r"[0-9](?:_?[0-9])*"
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*"
    r"|0[oO][0-7](?:_?[0-7])*"
    r"|0[bB][01](?:_?[01])*"
    rf"|(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?"
)
_SIMPLE_ESCAPES: Final = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}
_MAX_DEPTH: Final = 64


class _JsObjectParser:
    """Tokenizer plus recursive-descent parser; every error is a ConfigError with line/column."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0  # where the tokenizer continues
        self._lookahead: _Token | None = None

    # --- errors ----------------------------------------------------------------------------------

    def _error(self, pos: int, message: str) -> ConfigError:
        line = self._text.count("\n", 0, pos) + 1
        column = pos - (self._text.rfind("\n", 0, pos) + 1) + 1
        return ConfigError(f"syntax error at line {line}, column {column}: {message}")

    # --- tokenizer -------------------------------------------------------------------------------

    def _read_token(self) -> _Token:
        """Read the token at ``self._pos`` and move past it. Tokens are read on demand, so that the
        first problem in reading order is the one reported."""
        text = self._text
        pos = self._skip_space_and_comments(self._pos)
        if pos >= len(text):
            self._pos = pos
            return _Token("eof", None, pos)
        char = text[pos]
        token: _Token
        if char in "'\"":
            value, end = self._read_string(pos)
            token = _Token("string", value, pos)
        elif char in _DECIMAL or (char == "." and text[pos + 1 : pos + 2] in _DECIMAL):
            number, end = self._read_number(pos)
            token = _Token("number", number, pos)
        elif char in _PUNCTUATION:
            end = pos + 1
            token = _Token("punct", char, pos)
        elif (ident := _IDENT.match(text, pos)) is not None:
            end = ident.end()
            token = _Token("ident", ident.group(), pos)
        elif char == "`":
            raise self._error(pos, "template literals are not supported; use '...' or \"...\"")
        else:
            raise self._error(pos, f"unexpected character {char!r}")
        self._pos = end
        return token

    def _skip_space_and_comments(self, pos: int) -> int:
        text = self._text
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
            elif text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline + 1
            elif text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                if close < 0:
                    raise self._error(pos, "unterminated /* comment")
                pos = close + 2
            else:
                break
        return pos

    def _read_number(self, pos: int) -> tuple[int | float, int]:
        match = _NUMBER.match(self._text, pos)
        if match is None:  # pragma: no cover - the caller saw a digit or ".<digit>"
            raise self._error(pos, "malformed number")
        end = match.end()
        if end < len(self._text) and (self._text[end].isalnum() or self._text[end] in "_$."):
            bad = re.compile(r"[\w$.]*").match(self._text, end)
            assert bad is not None
            raise self._error(pos, f"malformed number {self._text[pos : bad.end()]!r}")
        literal = match.group().replace("_", "")
        prefix = literal[:2].lower()
        if prefix in ("0x", "0o", "0b"):
            return int(literal[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix]), end
        if re.fullmatch(r"0[0-9]+", literal):
            raise self._error(pos, f"legacy octal / leading-zero number {literal!r} is not allowed")
        if any(c in literal for c in ".eE"):
            return float(literal), end
        return int(literal), end

    def _read_string(self, pos: int) -> tuple[str, int]:
        text = self._text
        quote = text[pos]
        out: list[str] = []
        i = pos + 1
        while True:
            if i >= len(text) or text[i] in "\r\n":
                raise self._error(pos, "unterminated string")
            char = text[i]
            if char == quote:
                return _join_surrogates("".join(out)), i + 1
            if char != "\\":
                out.append(char)
                i += 1
                continue
            # An escape sequence.
            if i + 1 >= len(text):
                raise self._error(pos, "unterminated string")
            esc = text[i + 1]
            i += 2
            if esc in _SIMPLE_ESCAPES and not (esc == "0" and text[i : i + 1].isdigit()):
                out.append(_SIMPLE_ESCAPES[esc])
            elif esc == "x":
                out.append(self._hex_escape(i - 2, text[i : i + 2], 2))
                i += 2
            elif esc == "u" and text[i : i + 1] == "{":
                close = text.find("}", i)
                if close < 0:
                    raise self._error(i - 2, "malformed \\u{...} escape")
                out.append(self._hex_escape(i - 2, text[i + 1 : close], None))
                i = close + 1
            elif esc == "u":
                out.append(self._hex_escape(i - 2, text[i : i + 4], 4))
                i += 4
            elif esc == "\r":  # line continuation (\r\n or \r)
                if text[i : i + 1] == "\n":
                    i += 1
            elif esc == "\n":  # line continuation
                pass
            elif esc.isdigit():
                raise self._error(i - 2, f"octal escape '\\{esc}' is not allowed")
            else:  # JavaScript: any other escaped character stands for itself (\' \" \\ \/ ...)
                out.append(esc)

    def _hex_escape(self, pos: int, digits: str, length: int | None) -> str:
        valid = bool(re.fullmatch(r"[0-9a-fA-F]+", digits)) and (length is None or len(digits) == length)
        if not valid or int(digits, 16) > 0x10FFFF:
            raise self._error(pos, f"malformed escape sequence near {digits!r}")
        return chr(int(digits, 16))

    # --- parser ----------------------------------------------------------------------------------

    def _peek(self) -> _Token:
        if self._lookahead is None:
            self._lookahead = self._read_token()
        return self._lookahead

    def _next(self) -> _Token:
        token = self._peek()
        self._lookahead = None
        return token

    def _is(self, token: _Token, punct: str) -> bool:
        return token.kind == "punct" and token.value == punct

    def parse(self) -> dict[str, object]:
        """Parse the whole text as one object, adding the outer braces if they are missing."""
        first = self._peek()
        if self._is(first, "{"):
            self._next()
            result = self._members(closing="}", depth=1)
            trailing = self._peek()
            if trailing.kind != "eof":
                raise self._error(trailing.pos, f"expected end of input, found {trailing.describe()}")
            return result
        return self._members(closing=None, depth=1)

    def _members(self, closing: str | None, depth: int) -> dict[str, object]:
        """Members up to and including ``closing`` (None: up to the end of input)."""
        end_name = repr(closing) if closing else "end of input"
        result: dict[str, object] = {}
        while True:
            token = self._next()
            if (closing is None and token.kind == "eof") or (closing and self._is(token, closing)):
                return result
            if token.kind in ("ident", "string", "number"):
                key = str(token.value)
            else:
                raise self._error(token.pos, f"expected a key or {end_name}, found {token.describe()}")
            colon = self._next()
            if not self._is(colon, ":"):
                raise self._error(colon.pos, f"expected ':' after key {key!r}, found {colon.describe()}")
            value = self._value(depth)
            if key in result and not same_value(result[key], value):
                raise self._error(token.pos, f"key {key!r} is given twice with different values")
            result[key] = value
            separator = self._next()
            if self._is(separator, ","):
                continue
            if (closing is None and separator.kind == "eof") or (closing and self._is(separator, closing)):
                return result
            raise self._error(separator.pos, f"expected ',' or {end_name}, found {separator.describe()}")

    def _array(self, depth: int) -> list[object]:
        result: list[object] = []
        while True:
            if self._is(self._peek(), "]"):
                self._next()
                return result
            result.append(self._value(depth))
            separator = self._next()
            if self._is(separator, ","):
                continue
            if self._is(separator, "]"):
                return result
            raise self._error(separator.pos, f"expected ',' or ']', found {separator.describe()}")

    def _value(self, depth: int) -> object:
        token = self._next()
        if depth >= _MAX_DEPTH:
            raise self._error(token.pos, f"nesting deeper than {_MAX_DEPTH} levels")
        if self._is(token, "{"):
            return self._members(closing="}", depth=depth + 1)
        if self._is(token, "["):
            return self._array(depth + 1)
        if token.kind in ("string", "number"):
            return token.value
        if self._is(token, "-") or self._is(token, "+"):
            number = self._next()
            if number.kind != "number":
                raise self._error(number.pos, f"expected a number after {token.value!r}")
            assert isinstance(number.value, int | float)
            return -number.value if token.value == "-" else number.value
        if token.kind == "ident":
            literals: dict[object, object] = {"true": True, "false": False, "null": None, "undefined": None}
            if token.value in literals:
                return literals[token.value]
            if token.value in ("function", "async"):
                raise self._error(
                    token.pos, "functions are not supported here; pass a Python callable to from_faq()"
                )
            raise self._error(
                token.pos,
                f"unsupported identifier {token.value!r} (values may be strings, numbers, arrays,"
                " objects, true, false, null or undefined)",
            )
        raise self._error(token.pos, f"expected a value, found {token.describe()}")
