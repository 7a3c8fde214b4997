"""Probe functions generated for each shape of path index: the routing table's inner loop, unrolled.

A ``PathIndex`` holds anchors in buckets of several kinds (exact strings, numbers and literals, prefixes
and suffixes of a few lengths, case-folded forms, presence, scanned tests, second-level groups). A
generic probe tests every kind for every value, and loops over the prefix and suffix lengths. Here the
probe is generated as Python source for the kinds an index actually holds, with each length unrolled
into one slice and one dictionary lookup: an event type index holding exact names and the prefixes
``chat.`` and ``email.`` becomes, per value, ``strings.get(value)``, ``prefixes.get(value[:5])`` and
``prefixes.get(value[:6])``, nothing else.

The generated source contains only fixed snippets and integer lengths; every piece of data (the
buckets, which user patterns fill) is passed to the generated factory as an argument, never written
into source. Factories are cached by shape, so indexes of the same shape (most second-level ones)
share one compiled function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

# Beyond this many distinct lengths in one bucket, a loop replaces the unrolled lookups (bounds the
# size of the generated code for patterns with very many prefix lengths).
MAX_UNROLLED_LENGTHS = 8

_ARGUMENTS = (
    "strings, numbers, literals, nested, prefixes, suffixes, folded, folded_prefixes, folded_suffixes, "
    "present, scans, probe_group, p_lengths, s_lengths, fp_lengths, fs_lengths"
)


@functools.lru_cache(maxsize=1024)
def probe_factory(
    *,
    strings: bool,
    numbers: bool,
    literals: bool,
    string_groups: bool,
    typed_groups: bool,
    p_lengths: tuple[int, ...],
    s_lengths: tuple[int, ...],
    folded: bool,
    fp_lengths: tuple[int, ...],
    fs_lengths: tuple[int, ...],
    present: bool,
    scans: bool,
) -> Callable[..., Any]:
    """The compiled factory of probes for one shape of index; called with the index's buckets."""
    text_lines: list[str] = []
    if strings:
        text_lines += ["hit = strings.get(value)", "if hit:", "    out.update(hit)"]
    if string_groups:
        text_lines += [
            "group = nested.get(value)",
            "if group is not None:",
            "    probe_group(group, out, cache, root)",
        ]
    text_lines += _affix_lines("prefixes", "value", p_lengths, prefix=True)
    text_lines += _affix_lines("suffixes", "value", s_lengths, prefix=False)
    if folded or fp_lengths or fs_lengths:
        text_lines.append("text = value.casefold()")
        if folded:
            text_lines += ["hit = folded.get(text)", "if hit:", "    out.update(hit)"]
        text_lines += _affix_lines("folded_prefixes", "text", fp_lengths, prefix=True)
        text_lines += _affix_lines("folded_suffixes", "text", fs_lengths, prefix=False)
    number_lines: list[str] = []
    if numbers:
        number_lines += ["hit = numbers.get(value)", "if hit:", "    out.update(hit)"]
    if typed_groups:
        number_lines += [
            'group = nested.get(("number", value))',
            "if group is not None:",
            "    probe_group(group, out, cache, root)",
        ]
    literal_lines: list[str] = []
    if literals:
        literal_lines += ["hit = literals.get(value)", "if hit:", "    out.update(hit)"]
    if typed_groups:
        literal_lines += [
            'group = nested.get(("literal", value))',
            "if group is not None:",
            "    probe_group(group, out, cache, root)",
        ]
    body: list[str] = []
    if number_lines or literal_lines:
        body += ["kind = type(value)", "if kind is str:", *_indent(text_lines or ["pass"])]
        if number_lines:
            body += ["elif kind is int or kind is float:", *_indent(number_lines)]
        if literal_lines:
            body += ["elif kind is bool or value is None:", *_indent(literal_lines)]
    elif text_lines:
        body += ["if type(value) is str:", *_indent(text_lines)]
    if scans:
        body += ["for test, conjunction in scans:", "    if test.matches(value):", "        out.add(conjunction)"]
    probe = ["def probe(values, out, cache, root):"]
    if present:
        probe.append("    out.update(present)")
    probe += ["    for value in values:", *_indent(body or ["pass"], 2)]
    source = "\n".join([f"def make({_ARGUMENTS}):", *_indent(probe), "    return probe", ""])
    namespace: dict[str, Any] = {}
    # Generated from the fixed snippets above and integer lengths only; the data arrives as arguments.
    exec(compile(source, "<matching.probes>", "exec"), namespace)  # noqa: S102 - see the comment above
    factory: Callable[..., Any] = namespace["make"]
    return factory


def _affix_lines(bucket: str, name: str, lengths: tuple[int, ...], *, prefix: bool) -> list[str]:
    """Lookups of ``name``'s prefixes (or suffixes) of each length in ``bucket``."""
    if not lengths:
        return []
    lengths_name = {
        "prefixes": "p_lengths",
        "suffixes": "s_lengths",
        "folded_prefixes": "fp_lengths",
        "folded_suffixes": "fs_lengths",
    }[bucket]
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
        lines += [f"hit = {bucket}.get({piece})", "if hit:", "    out.update(hit)"]
    return lines


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]
