"""The package's public surface: ``__all__`` complete and sorted, as the style guide asks."""

from __future__ import annotations

import cxone_eventbridge.api as api


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    """Every public name defined in ``api`` is in ``__all__``, sorted as ruff sorts it, and each resolves."""
    public = {name for name in vars(api) if not name.startswith("_")}
    assert sorted(api.__all__, key=_isort_key) == api.__all__
    assert set(api.__all__) == public
    for name in api.__all__:
        assert getattr(api, name) is not None
