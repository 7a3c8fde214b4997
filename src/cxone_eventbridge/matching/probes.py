"""Probe functions generated for each shape of path index: the routing table's inner loop, unrolled.

A ``PathIndex`` holds anchors in buckets of several kinds (exact strings, numbers and literals, prefixes
and suffixes of a few lengths, case-folded forms, presence, scanned tests, second-level groups). A
generic probe tests every kind for every value, and loops over the prefix and suffix lengths. Here the
probe is generated as Python source for the kinds an index actually holds, with each length unrolled
into one slice and one dictionary lookup: an event type index holding exact names and the prefixes
``chat.`` and ``email.`` becomes, per value, ``strings.get(value)``, ``prefixes.get(value[:5])`` and
``prefixes.get(value[:6])``, nothing else. The second-level indexes under one exact value (a *group*:
"this tenant's rules, by event type, by direction, ...") are generated as one function that reads each
path and probes it inline, with no call or loop per index.

The generated source contains only fixed snippets, integer lengths and numbered variable names; every
piece of data (the buckets, which user patterns fill, and the paths) is passed to the generated factory
as an argument, never written into source. Factories are cached by shape, so indexes and groups of the
same shape (most second-level ones) share one compiled function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

# Beyond this many distinct lengths in one bucket, a loop replaces the unrolled lookups (bounds the
# size of the generated code for patterns with very many prefix lengths).
MAX_UNROLLED_LENGTHS = 8
# Beyond this many second-level indexes in one group, the group is probed by a loop over them.
MAX_UNROLLED_INDEXES = 16

# The buckets of an index, in the order ``Shape``-generated code takes them (see ``buckets.bucket_args``).
BUCKETS = (
    "strings",
    "numbers",
    "literals",
    "nested",
    "prefixes",
    "suffixes",
    "folded",
    "folded_prefixes",
    "folded_suffixes",
    "present",
    "scans",
    "p_lengths",
    "s_lengths",
    "fp_lengths",
    "fs_lengths",
)


class Shape(NamedTuple):
    """What an index holds, as far as the code of its probe depends on it."""

    strings: bool
    numbers: bool
    literals: bool
    string_groups: bool
    typed_groups: bool
    p_lengths: tuple[int, ...]
    s_lengths: tuple[int, ...]
    folded: bool
    fp_lengths: tuple[int, ...]
    fs_lengths: tuple[int, ...]
    present: bool
    scans: bool


def _update(bucket: str, key: str) -> list[str]:
    return [f"hit = {bucket}.get({key})", "if hit:", "    out.update(hit)"]


def _group(key: str) -> list[str]:
    return [f"group = nested_#.get({key})", "if group is not None:", "    group.probe(out, cache, root)"]


def _value_lines(shape: Shape) -> list[str]:
    """The body of the loop over ``value``, with ``#`` standing for the index's number."""
    text: list[str] = []
    if shape.strings:
        text += _update("strings_#", "value")
    if shape.string_groups:
        text += _group("value")
    text += _affix_lines("prefixes_#", "p_lengths_#", "value", shape.p_lengths, prefix=True)
    text += _affix_lines("suffixes_#", "s_lengths_#", "value", shape.s_lengths, prefix=False)
    if shape.folded or shape.fp_lengths or shape.fs_lengths:
        text.append("text = value.casefold()")
        if shape.folded:
            text += _update("folded_#", "text")
        text += _affix_lines("folded_prefixes_#", "fp_lengths_#", "text", shape.fp_lengths, prefix=True)
        text += _affix_lines("folded_suffixes_#", "fs_lengths_#", "text", shape.fs_lengths, prefix=False)
    numbers: list[str] = []
    if shape.numbers:
        numbers += _update("numbers_#", "value")
    if shape.typed_groups:
        numbers += _group('("number", value)')
    literals: list[str] = []
    if shape.literals:
        literals += _update("literals_#", "value")
    if shape.typed_groups:
        literals += _group('("literal", value)')
    body: list[str] = []
    if numbers or literals:
        body += ["kind = type(value)", "if kind is str:", *_indent(text or ["pass"])]
        if numbers:
            body += ["elif kind is int or kind is float:", *_indent(numbers)]
        if literals:
            body += ["elif kind is bool or value is None:", *_indent(literals)]
    elif text:
        body += ["if type(value) is str:", *_indent(text)]
    if shape.scans:
        body += ["for test, conjunction in scans_#:", "    if test.matches(value):", "        out.add(conjunction)"]
    return body


def _values_lines(shape: Shape) -> list[str]:
    """The probe of ``values`` (non-empty) by one index, with ``#`` standing for the index's number."""
    lines = ["out.update(present_#)"] if shape.present else []
    body = _value_lines(shape)
    if body:
        lines += ["for value in values:", *_indent(body)]
    return lines


def _parameters(count: int) -> str:
    return ", ".join(f"{bucket}_{number}" for number in range(count) for bucket in BUCKETS)


def _compile(lines: list[str]) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    # Generated from the fixed snippets of this module, integer lengths and numbered names only; the
    # data arrives as arguments of ``make``.
    exec(compile("\n".join([*lines, ""]), "<matching.probes>", "exec"), namespace)  # noqa: S102 - see above
    factory: Callable[..., Any] = namespace["make"]
    return factory


@functools.lru_cache(maxsize=1024)
def probe_factory(shape: Shape) -> Callable[..., Any]:
    """``make(*buckets)`` giving ``probe(values, out, cache, root)`` for indexes of this shape."""
    body = [line.replace("#", "0") for line in _values_lines(shape)] or ["pass"]
    return _compile(
        [
            f"def make({_parameters(1)}):",
            "    def probe(values, out, cache, root):",
            *_indent(body, 2),
            "    return probe",
        ]
    )


@functools.lru_cache(maxsize=1024)
def group_factory(shapes: tuple[Shape, ...]) -> Callable[..., Any]:
    """``make(*(path, reader, *buckets) per index)`` giving ``probe(out, cache, root)`` for groups of this shape.

    Each index's path is read once per event, through ``cache`` (values by path, shared with the rest of
    the match), and probed inline.
    """
    parameters = ", ".join(
        f"path_{number}, reader_{number}, " + ", ".join(f"{bucket}_{number}" for bucket in BUCKETS)
        for number in range(len(shapes))
    )
    body: list[str] = []
    for number, shape in enumerate(shapes):
        probe = _values_lines(shape)
        body += [
            f"values = cache.get(path_{number})",
            "if values is None:",
            f"    values = cache[path_{number}] = reader_{number}(root)",
        ]
        if probe:
            body += ["if values:", *_indent([line.replace("#", str(number)) for line in probe])]
    return _compile(
        [
            f"def make({parameters}):",
            "    def probe(out, cache, root):",
            *_indent(body or ["pass"], 2),
            "    return probe",
        ]
    )


def _affix_lines(bucket: str, lengths_name: str, name: str, lengths: tuple[int, ...], *, prefix: bool) -> list[str]:
    """Lookups of ``name``'s prefixes (or suffixes) of each length in ``bucket``."""
    if not lengths:
        return []
    if len(lengths) > MAX_UNROLLED_LENGTHS:
        piece = f"{name}[:length]" if prefix else f"{name}[size - length :]"
        return [
            f"size = len({name})",
            f"for length in {lengths_name}:",
            "    if length > size:",
            "        break",
            f"    hit = {bucket}.get({piece})",
            "    if hit:",
            "        out.update(hit)",
        ]
    lines: list[str] = []
    for length in lengths:
        # A slice longer than the value is the whole value, which is a hit only when the value equals a
        # key of that length, hence starts (ends) with it: no length test is needed. [-0:] would be the
        # whole value, so the empty suffix is looked up as such.
        piece = f"{name}[:{length}]" if prefix else (f"{name}[-{length}:]" if length else '""')
        lines += _update(bucket, piece)
    return lines


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]
