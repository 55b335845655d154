"""Tests for p2ploader.jsobject: the JavaScript object-literal parser of the FAQ's settings text."""

from __future__ import annotations

import pytest

from p2ploader.errors import ConfigError
from p2ploader.jsobject import parse_js_object, same_value


def test_parses_the_faq_subset_into_plain_values() -> None:
    text = """
    /* block comment
       over two lines */
    segments: {swarmId: 'it\\'s "quoted"', forwardSegmentCount: 1_0,},
    "loader": {
      'httpRetries': 0x3, // hex
      backoff: .5e3, octal: 0o17, binary: 0b101, plus: +0.25, minus: -1.5e-3,
      list: ["wss://a.example", 'ws://b.example:8000/x',],
      nested: {urls: "stun:s.example\\u003a1", n: null, u: undefined, t: true, f: false},
      7: "numeric key", smile: "\\ud83d\\ude00",
    },
    """
    assert parse_js_object(text) == {
        "segments": {"swarmId": 'it\'s "quoted"', "forwardSegmentCount": 10},
        "loader": {
            "httpRetries": 3,
            "backoff": 500.0,
            "octal": 15,
            "binary": 5,
            "plus": 0.25,
            "minus": -0.0015,
            "list": ["wss://a.example", "ws://b.example:8000/x"],
            "nested": {"urls": "stun:s.example:1", "n": None, "u": None, "t": True, "f": False},
            "7": "numeric key",
            "smile": "\U0001f600",
        },
    }


def test_outer_braces_are_optional_and_empty_text_is_an_empty_object() -> None:
    assert parse_js_object("{a: 1}") == parse_js_object("a: 1") == {"a": 1}
    assert parse_js_object("") == parse_js_object("// nothing\n{}") == {}


def test_a_key_given_twice_must_keep_its_value() -> None:
    assert parse_js_object("a: 1, a: 1") == {"a": 1}
    with pytest.raises(ConfigError, match="given twice"):
        parse_js_object("a: 1, a: true")  # JavaScript's true is not 1
    assert same_value(1, 1.0)
    assert not same_value(True, 1)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("loader: {\n  cachedSegmentsCount 5\n}", 2, 23),
        ("loader: {\n  cachedSegmentsCount: 5\n  useP2P: true\n}", 3, 3),
        ("loader: {\n  swarmId: 'unterminated\n}", 2, 12),
        ("loader: {\n  a: 1,\n", 3, 1),
        ("/* never closed", 1, 1),
        ("a: 10px", 1, 4),
        ("a: 1.2.3", 1, 4),
        ("a: 010", 1, 4),
        ("a: [1,,2]", 1, 7),
        ("a: foo", 1, 4),
        ("a: Infinity", 1, 4),
        ("a: function (s) { return true }", 1, 4),
        ("a: `template`", 1, 4),
        ("a: -'x'", 1, 5),
        ("a: 1 }", 1, 6),
        ("{a: 1} b: 2", 1, 8),
        ("{a: 1", 1, 6),
        ("x: 1,\n  x: 2", 2, 3),
        ("a: 'bad \\u12'", 1, 9),
        ("a: 'bad \\x4'", 1, 9),
        ("a: 'bad \\1'", 1, 9),
        ("a: 'bad\\", 1, 4),
        ("a: @", 1, 4),
        ("a: [1 2]", 1, 7),
        (": 1", 1, 1),
    ],
)
def test_syntax_errors_carry_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(ConfigError, match=rf"line {line}, column {column}\b"):
        parse_js_object(text)


def test_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nesting"):
        parse_js_object("rtcConfig: " + "[" * 200 + "]" * 200)
