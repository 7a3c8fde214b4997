"""The JSON wire rules: one meaning of "a JSON number", finite or not, strict JSON text, event encoding and ids."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest

from cxone_eventbridge import wire


class _Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize(
    ("value", "number", "finite"),
    [
        (0, True, True),
        (-2.5, True, True),
        (10**400, True, True),
        (float("nan"), True, False),
        (float("inf"), True, False),
        (float("-inf"), True, False),
        (True, False, False),
        (False, False, False),
        ("1", False, False),
        (None, False, False),
        ([1], False, False),
        (_Level.LOW, False, False),
    ],
)
def test_json_number_and_finite_number(value: Any, number: bool, finite: bool) -> None:
    """A bool is never a number, only exact int/float are, and ints beyond float range are still finite."""
    assert wire.is_json_number(value) is number
    assert wire.is_finite_number(value) is finite


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "{"])
def test_loads_refuses_what_is_not_json(text: str) -> None:
    """NaN and the infinities are not JSON: loads refuses them as it refuses malformed text."""
    with pytest.raises(ValueError, match=r"not valid JSON|Expecting"):
        wire.loads(text)


def test_encode_event_is_compact_utf8_and_refuses_nan() -> None:
    """An event encodes as compact UTF-8 JSON; a NaN inside cannot be encoded."""
    assert wire.encode_event({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
    with pytest.raises(ValueError, match="JSON compliant"):
        wire.encode_event({"a": float("nan")})


@pytest.mark.parametrize(
    ("event_id", "usable"),
    [(None, True), ("evt-1", True), ("x" * wire.MAX_EVENT_ID_CHARS, True), ("", False), ("  ", False), (7, False)],
)
def test_event_id_problem(event_id: object, usable: bool) -> None:
    """An absent id or a non-blank string of at most MAX_EVENT_ID_CHARS is usable; anything else says why not."""
    assert (wire.event_id_problem(event_id) is None) is usable
    assert wire.event_id_problem("x" * (wire.MAX_EVENT_ID_CHARS + 1)) is not None


@pytest.mark.parametrize(
    ("value", "described"),
    [(None, "null"), (True, "a boolean"), (1.5, "a number"), ("s", "a string"), ([], "an array"), ({}, "an object")],
)
def test_describe_json_type(value: object, described: str) -> None:
    """Messages name a value's JSON type, with Python's own name for anything that is not JSON."""
    assert wire.describe_json_type(value) == described
    assert wire.describe_json_type({1}) == "a set"


@pytest.mark.parametrize(
    "text",
    [
        "1e999",
        '{"a": [-1e400]}',
        '"\\ud800"',
        '{"\\udc00": 1}',
        b'"\xed\xa0\x80"',
        "[" * 100_000 + "]" * 100_000,
        "[" * 65 + "]" * 65,
        "1" * 5_000,
        "[1] x",
    ],
)
def test_loads_refuses_json_the_package_cannot_carry_on_with_a_value_error(text: str | bytes) -> None:
    """Overflowing numbers, lone surrogates, nesting past the limit and huge integers are ValueErrors, never crashes."""
    with pytest.raises(ValueError):
        wire.loads(text)


def test_loads_accepts_the_limits_themselves() -> None:
    """64 levels, a surrogate pair, bytes with a BOM and big finite numbers read as json.loads reads them."""
    assert wire.loads("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)
    assert wire.loads(b'\xef\xbb\xbf{"e": "\\ud83d\\ude00", "n": 1e308, "i": 12345678901234567890}') == {
        "e": "\U0001f600",
        "n": 1e308,
        "i": 12345678901234567890,
    }


def test_encode_event_refuses_a_lone_surrogate_and_hopeless_depth_with_value_error() -> None:
    """The library path (events given as dicts) gets ValueError, not UnicodeError escapes or RecursionError."""
    with pytest.raises(ValueError, match="surrogates"):
        wire.encode_event({"a": "\ud800"})
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        wire.encode_event({"a": deep})
