"""Events as (path, leaf values): flattened iteratively, with work bounded for hostile input.

Paths join object keys with ``.`` (so ``{"a": {"b": 1}}`` and ``{"a.b": 1}`` both have ``a.b``, as in
EventBridge). An array contributes each element to its own path, arrays of objects are traversed and nested
arrays are crushed. Objects nested deeper than ``MAX_PATH_SEGMENTS`` are skipped: no pattern can name
such a path, since a pattern's paths are limited to that many segments. Values that are not JSON
(sets, dates, objects) are skipped too. Nothing here recurses, so a 10,000-deep event cannot raise
``RecursionError``; arrays and strings are walked once, so time grows linearly with the event's size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cxone_eventbridge.exceptions import InvalidEventError
from cxone_eventbridge.wire import describe_json_type

MAX_PATH_SEGMENTS = 32

# Flags of ``wanted`` paths for the pruned walk: a leaf value there is needed, or a deeper path is.
WANT_LEAF = 1
WANT_INNER = 2

_SCALARS = (str, int, float, bool, type(None))


def require_object(event: object) -> dict[str, Any]:
    """The event itself when it is a JSON object, else InvalidEventError saying what it is."""
    if type(event) is not dict:
        raise InvalidEventError(f"an event must be a JSON object, not {describe_json_type(event)}")
    return event


def flatten_event(event: object) -> dict[str, list[Any]]:
    """Every leaf value of ``event`` by path (the reference evaluator's view of an event)."""
    root = require_object(event)
    out: dict[str, list[Any]] = {}
    # Each entry is (object or list, path prefix, depth). Lists carry their own path as the prefix.
    stack: list[tuple[Any, str, int]] = [(root, "", 1)]
    while stack:
        node, prefix, depth = stack.pop()
        if type(node) is dict:
            for key, value in node.items():
                if type(key) is not str:
                    continue
                path = prefix + key
                _place(value, path, depth, out, stack)
        else:
            for value in node:
                _place(value, prefix, depth, out, stack)
    return out


def _place(value: Any, path: str, depth: int, out: dict[str, list[Any]], stack: list[tuple[Any, str, int]]) -> None:
    kind = type(value)
    if kind is dict:
        if depth < MAX_PATH_SEGMENTS:
            stack.append((value, path + ".", depth + 1))
    elif kind is list or kind is tuple:
        stack.append((value, path, depth))
    elif kind in _SCALARS:
        values = out.get(path)
        if values is None:
            out[path] = [value]
        else:
            values.append(value)


def collect_wanted(event: dict[str, Any], wanted: dict[str, int]) -> dict[str, list[Any]]:
    """The leaf values of ``event`` at the paths ``wanted`` names, descending only where it says to.

    The routing table's hot path: subtrees that no rule mentions are never visited, so a deep or huge
    part of an event that no pattern names costs one dictionary lookup.
    """
    # The per-value step is written out twice below (object members, list elements) rather than put in a
    # function: on this path a call per visited value would add to the cost of every event routed.
    out: dict[str, list[Any]] = {}
    stack: list[tuple[Any, str]] = [(event, "")]
    pop, push = stack.pop, stack.append
    while stack:
        node, prefix = pop()
        if type(node) is dict:
            for key, value in node.items():
                if type(key) is not str:
                    continue
                path = prefix + key
                flags = wanted.get(path)
                if flags is None:
                    continue
                kind = type(value)
                if kind is dict:
                    if flags & WANT_INNER:
                        push((value, path + "."))
                elif kind is list or kind is tuple:
                    push((value, path))
                elif flags & WANT_LEAF and kind in _SCALARS:
                    values = out.get(path)
                    if values is None:
                        out[path] = [value]
                    else:
                        values.append(value)
        else:
            # A list's path is already known to be wanted; its elements sit at that same path.
            flags = wanted[prefix]
            for value in node:
                kind = type(value)
                if kind is dict:
                    if flags & WANT_INNER:
                        push((value, prefix + "."))
                elif kind is list or kind is tuple:
                    push((value, prefix))
                elif flags & WANT_LEAF and kind in _SCALARS:
                    values = out.get(prefix)
                    if values is None:
                        out[prefix] = [value]
                    else:
                        values.append(value)
    return out


_MISSING = object()


def _values_at(start: Any, start_rest: str) -> list[Any]:
    """The general route: every leaf value at ``start_rest`` below ``start``, through arrays and dotted keys."""
    out: list[Any] = []
    stack: list[tuple[Any, str]] = [(start, start_rest)]
    pop, push = stack.pop, stack.append
    while stack:
        node, rest = pop()
        kind = type(node)
        if kind is dict:
            value = node.get(rest, _MISSING)
            if value is not _MISSING:
                kind = type(value)
                if kind is list or kind is tuple:
                    push((value, ""))
                elif kind in _SCALARS:
                    out.append(value)
            position = rest.find(".")
            while position != -1:
                child = node.get(rest[:position], _MISSING)
                if child is not _MISSING:
                    push((child, rest[position + 1 :]))
                position = rest.find(".", position + 1)
        elif kind is list or kind is tuple:
            for value in node:
                kind = type(value)
                if kind is dict:
                    if rest:
                        push((value, rest))
                elif kind is list or kind is tuple:
                    push((value, rest))
                elif not rest and kind in _SCALARS:
                    out.append(value)
    return out


PathReader = Callable[[dict[str, Any]], list[Any]]


@functools.lru_cache(maxsize=65_536)
def path_reader(path: str) -> PathReader:
    """A function giving the leaf values of an event at ``path``, as ``flatten_event(event).get(path, [])`` would.

    The routing table calls one per anchored path per event. The path's segments, and the dotted event keys
    (``{"a.b": 1}`` is at ``a.b`` too) that would reach it another way, are worked out once, so the common
    route, a chain of objects ending at a scalar, is a few dictionary lookups; arrays and dotted keys take
    the general route.
    """
    segments = path.split(".")
    if len(segments) == 1:
        return _reader_1(path)
    if len(segments) == 2:
        return _reader_2(path, *segments)
    if len(segments) == 3:
        return _reader_3(path, *segments)
    return _reader_n(segments)


# The readers below share one shape: first the dotted event keys that would make the path reachable
# another way (then the general route), then the chain of objects by plain lookups, ending at a scalar
# (the common case: one value) or at an array (the general route from there). Paths of one to three
# segments, nearly all of them, get unrolled readers.


def _leaf(value: Any) -> list[Any]:
    kind = type(value)
    if kind in _SCALARS:
        return [value]
    if kind is list or kind is tuple:
        # An array of scalars (tags, ids) is its own list of values; anything nested takes the general route.
        out = []
        for element in value:
            if type(element) not in _SCALARS:
                return _values_at(value, "")
            out.append(element)
        return out
    return []


def _reader_1(key: str) -> PathReader:
    def read_1(event: dict[str, Any]) -> list[Any]:
        value = event.get(key, _MISSING)
        if type(value) in _SCALARS:
            return [value]
        return [] if value is _MISSING else _leaf(value)

    return read_1


def _reader_2(path: str, first: str, last: str) -> PathReader:
    def read_2(event: dict[str, Any]) -> list[Any]:
        if path in event:
            return _values_at(event, path)
        node = event.get(first)
        if type(node) is not dict:
            return _values_at(node, last) if type(node) in (list, tuple) else []
        value = node.get(last, _MISSING)
        if type(value) in _SCALARS:
            return [value]
        return [] if value is _MISSING else _leaf(value)

    return read_2


def _reader_3(path: str, first: str, second: str, last: str) -> PathReader:
    head = f"{first}.{second}"
    tail = f"{second}.{last}"

    def read_3(event: dict[str, Any]) -> list[Any]:
        if head in event or path in event:
            return _values_at(event, path)
        node = event.get(first)
        if type(node) is not dict:
            return _values_at(node, tail) if type(node) in (list, tuple) else []
        if tail in node:
            return _values_at(node, tail)
        node = node.get(second)
        if type(node) is not dict:
            return _values_at(node, last) if type(node) in (list, tuple) else []
        value = node.get(last, _MISSING)
        if type(value) in _SCALARS:
            return [value]
        return [] if value is _MISSING else _leaf(value)

    return read_3


def _reader_n(segments: list[str]) -> PathReader:
    # Per level: the segment to descend by, and the longer dotted keys that would need the general route.
    levels = tuple(
        (segments[i], tuple(".".join(segments[i:j]) for j in range(i + 2, len(segments) + 1)))
        for i in range(len(segments) - 1)
    )
    last = segments[-1]

    def read(event: dict[str, Any]) -> list[Any]:
        node: Any = event
        for depth, (segment, dotted) in enumerate(levels, start=1):
            for key in dotted:
                if key in node:
                    return _values_at(node, ".".join(segments[depth - 1 :]))
            node = node.get(segment, _MISSING)
            kind = type(node)
            if kind is not dict:
                if kind is list or kind is tuple:
                    return _values_at(node, ".".join(segments[depth:]))
                return []
        value = node.get(last, _MISSING)
        return [] if value is _MISSING else _leaf(value)

    return read
