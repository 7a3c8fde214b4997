"""How complex a field's wildcard patterns are, measured as AWS's Event Ruler measures it.

EventBridge refuses a rule whose wildcards are "too complex" (its message: "Rule is too complex - try
using fewer wildcard characters or fewer repeating character sequences after a wildcard character").
Event Ruler's public ``MachineComplexityEvaluator`` defines the measure: the largest number of wildcard
*prefixes* that one input value can match at the same time, summed over the wildcard patterns of one
field. ``"a*aaa"`` and ``"aa*aa"`` score 7, because ``"aaaa"`` is matched by ``a*``, ``a*a``, ``a*aa``,
``a*aaa``, ``aa*``, ``aa*a`` and ``aa*aa``; ``"*a*a*a*a*a*a*a*a*"`` scores 17. Every state of that count
is one the matcher would have to follow for that input, which is why a high score means slow matching.

Like Event Ruler, values are read as UTF-8 bytes, the empty prefix does not count, and a pattern that
appears twice counts once. The search runs the patterns' combined automaton over every reachable set of
states (trying, per set, the bytes its states read literally and one byte standing for all the others),
stopping as soon as the count exceeds the limit. The work is bounded: past ``_MAX_STEPS`` transitions
the sum of each pattern's own complexity, an upper bound, decides.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_WILDCARD_COMPLEXITY = 10
"""The highest complexity accepted per field.

AWS does not publish EventBridge's threshold. Ten is the most any pattern observed to be accepted by
EventBridge reached in independent conformance work; keeping to it means a pattern accepted here is one
EventBridge accepts (the reverse may not hold near the edge).
"""

_STAR = -1
_OTHER_BYTE = -2  # stands for every byte that no active state reads literally
_MAX_STEPS = 200_000  # transitions computed before the search settles for an upper bound


def wildcard_complexity(
    patterns: Iterable[list[str | None]], *, limit: int = MAX_WILDCARD_COMPLEXITY, max_steps: int = _MAX_STEPS
) -> int:
    """The complexity of one field's wildcard patterns (from ``parse_wildcard``), or ``limit + 1`` when over.

    Each pattern is its literal runs and ``None`` for each ``*``. When the joint search would take more
    than ``max_steps`` transitions, the sum of the patterns' own complexities (never less than the joint
    one) decides instead.
    """
    tokenized = sorted({_tokens(pieces) for pieces in patterns})
    if not tokenized:
        return 0
    joint = _search(tokenized, limit, max_steps)
    if joint is not None:
        return joint
    upper = 0
    for tokens in tokenized:
        alone = _search([tokens], limit, max_steps)
        upper += limit + 1 if alone is None else alone
        if upper > limit:
            return limit + 1
    return upper


def _search(tokenized: list[tuple[int, ...]], limit: int, max_steps: int) -> int | None:
    """The joint complexity capped at ``limit + 1``, or None when the step budget runs out first."""
    start = frozenset((index, position) for index, tokens in enumerate(tokenized) for position in _closure(tokens, 0))
    best = _score(start)
    if best > limit:
        return limit + 1
    seen = {start}
    pending = [start]
    steps = 0
    while pending:
        active = pending.pop()
        # Only the bytes some state reads literally lead somewhere new; any other byte only feeds stars.
        readable = {tokenized[index][position] for index, position in active if position < len(tokenized[index])}
        readable.discard(_STAR)
        for byte in [*sorted(readable), _OTHER_BYTE]:
            steps += 1
            if steps > max_steps:
                return None
            following = frozenset(
                (index, after)
                for index, position in active
                for step in _steps(tokenized[index], position, byte)
                for after in _closure(tokenized[index], step)
            )
            if not following or following in seen:
                continue
            score = _score(following)
            if score > limit:
                return limit + 1
            best = max(best, score)
            seen.add(following)
            pending.append(following)
    return best


def _tokens(pieces: list[str | None]) -> tuple[int, ...]:
    tokens: list[int] = []
    for piece in pieces:
        if piece is None:
            tokens.append(_STAR)
        else:
            tokens.extend(piece.encode("utf-8", "surrogatepass"))
    return tuple(tokens)


def _closure(tokens: tuple[int, ...], position: int) -> list[int]:
    """``position`` and the positions after the stars that follow it (a star may match nothing)."""
    positions = [position]
    while position < len(tokens) and tokens[position] == _STAR:
        position += 1
        positions.append(position)
    return positions


def _steps(tokens: tuple[int, ...], position: int, byte: int) -> list[int]:
    """Positions reached from ``position`` by reading ``byte`` (before closing over stars)."""
    steps: list[int] = []
    if position > 0 and tokens[position - 1] == _STAR:
        steps.append(position)  # the star just read goes on consuming
    if position < len(tokens) and tokens[position] == byte:
        steps.append(position + 1)
    return steps


def _score(active: frozenset[tuple[int, int]]) -> int:
    """How many non-empty pattern prefixes match the input that led to ``active``."""
    return sum(1 for _, position in active if position > 0)
