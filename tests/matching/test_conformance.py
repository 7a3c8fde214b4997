"""Conformance: cases from AWS's Event Ruler, Quamina and the EventBridge documentation, kept as data.

Each file in ``conformance/`` names its source. A case is a match (``pattern``, ``event``, ``matches``),
a validity verdict (``pattern`` as a dict or as the JSON text the source wrote, ``valid``, optionally
part of the ``message``) or a wildcard complexity (``wildcards``, ``exact``, ``complexity``). Cases a
source holds that EventBridge does not share sit in each file's ``excluded`` list with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.exceptions import InvalidPatternError
from cxone_eventbridge.matching import RoutingTable, compile_pattern
from cxone_eventbridge.matching.patterns import parse_wildcard
from cxone_eventbridge.matching.wildcard_complexity import wildcard_complexity
from cxone_eventbridge.models import IntegrationTarget

CONFORMANCE = Path(__file__).parent / "conformance"
_EVALUATOR_CAP = 100  # Event Ruler's tests build MachineComplexityEvaluator(100)


def _cases(kind: str) -> list[Any]:
    found = []
    for path in sorted(CONFORMANCE.glob("*.json")):
        for index, case in enumerate(json.loads(path.read_text(encoding="utf-8"))["cases"]):
            if kind in case:
                found.append(pytest.param(case, id=f"{path.stem}[{index}] {case.get('name', '')}".strip()))
    return found


@pytest.mark.parametrize("case", _cases("matches"))
def test_match_case(case: dict[str, Any]) -> None:
    """The pattern matches the event exactly when the source says so, alone and through the routing table."""
    pattern = compile_pattern(case["pattern"])
    assert pattern.matches(case["event"]) is case["matches"]
    table = RoutingTable([IntegrationTarget(name="t", endpoint="https://example.com/h", event_pattern=case["pattern"])])
    assert table.match(case["event"]) == (["t"] if case["matches"] else [])


@pytest.mark.parametrize("case", _cases("valid"))
def test_validity_case(case: dict[str, Any]) -> None:
    """The pattern is accepted or refused as the source says, with the expected words when it names them."""
    if case["valid"]:
        compile_pattern(case["pattern"])
        return
    with pytest.raises(InvalidPatternError) as raised:
        compile_pattern(case["pattern"])
    assert case.get("message", "") in str(raised.value)


@pytest.mark.parametrize("case", _cases("complexity"))
def test_wildcard_complexity_case(case: dict[str, Any]) -> None:
    """Wildcard complexity is Event Ruler's number for the same patterns (exact values never count)."""
    pieces = []
    for text in case["wildcards"]:
        parsed = parse_wildcard(text)
        assert not isinstance(parsed, str), parsed
        pieces.append(parsed)
    got = wildcard_complexity(pieces, limit=_EVALUATOR_CAP)
    assert got == (_EVALUATOR_CAP + 1 if case["complexity"] == "over" else case["complexity"])


def test_every_conformance_file_names_its_source() -> None:
    """Each data file says where its cases come from, and each exclusion says why."""
    files = sorted(CONFORMANCE.glob("*.json"))
    assert len(files) >= 5
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["source"], path
        assert document["cases"], path
        assert all(item["why"] for item in document.get("excluded", [])), path


def test_wildcard_complexity_past_the_step_budget_uses_the_sum_of_each_pattern() -> None:
    """When the joint search is cut short, each pattern's own complexity, summed, decides (an upper bound)."""
    patterns = [parse_wildcard(text) for text in ("ab*c", "x*xx")]
    pieces = [p for p in patterns if not isinstance(p, str)]
    assert wildcard_complexity(pieces, limit=100) == 3  # the joint figure
    assert wildcard_complexity(pieces, limit=100, max_steps=12) == 5  # 2 + 3, each alone
    assert wildcard_complexity(pieces, limit=4, max_steps=12) == 5  # over the limit
    assert wildcard_complexity(pieces, limit=100, max_steps=1) == 101  # not even one pattern finished


def test_too_complex_wildcards_are_refused_with_eventbridges_words() -> None:
    """A field whose wildcards exceed the complexity limit is refused at its path; fewer stars pass."""
    with pytest.raises(InvalidPatternError, match=r"detail\.arn: Rule is too complex - try using fewer wildcard"):
        compile_pattern({"detail": {"arn": [{"wildcard": "*:*:*:*:*:event-bus/*"}]}})
    many = [{"wildcard": f"{c}*{c}{c}"} for c in "abcd"]  # 3 each but never at once
    compile_pattern({"a": many})
    with pytest.raises(InvalidPatternError, match="Rule is too complex"):
        compile_pattern({"a": [{"anything-but": {"wildcard": ["a*aaa", "aa*aa", "aaa*a", "a*a*a"]}}]})
