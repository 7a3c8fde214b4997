"""Events as (path, leaf values): flattened iteratively, with work bounded for hostile input.

Paths join object keys with ``.`` (so ``{"a": {"b": 1}}`` and ``{"a.b": 1}`` both have ``a.b``, as in
EventBridge). An array contributes each element to its own path, arrays of objects are traversed and nested
arrays are crushed. Objects nested deeper than ``MAX_PATH_SEGMENTS`` are skipped: no pattern can name
such a path, since a pattern's paths are limited to that many segments. Values that are not JSON
(sets, dates, objects) are skipped too. Nothing here recurses, so a 10,000-deep event cannot raise
``RecursionError``; arrays and strings are walked once, so time grows linearly with the event's size.
"""

from __future__ import annotations

from typing import Any

from cxone_eventbridge.exceptions import InvalidEventError

MAX_PATH_SEGMENTS = 32

# Flags of ``wanted`` paths for the pruned walk: a leaf value there is needed, or a deeper path is.
WANT_LEAF = 1
WANT_INNER = 2

_SCALARS = (str, int, float, bool, type(None))


def require_object(event: object) -> dict[str, Any]:
    """The event itself when it is a JSON object, else InvalidEventError saying what it is."""
    if type(event) is not dict:
        raise InvalidEventError(f"an event must be a JSON object, not {_json_type(event)}")
    return event


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


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
