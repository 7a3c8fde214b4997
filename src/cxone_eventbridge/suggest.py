"""The one "did you mean" of every error about a misspelt name: the closest known name, if one is close.

Field names and filter operators in a targets file, and match types in an event pattern, all use
:func:`did_you_mean`, so a typo is answered alike wherever it is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(written: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` when a known name is close to ``written``, else an empty string."""
    close = difflib.get_close_matches(written, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
