"""cxone-eventbridge: manage NICE CXone integration targets and route contact-center events to them."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # The version is read from the installed metadata on first use: importlib.metadata costs about 40 ms,
    # which `cxeb --help` and tab completion must not pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 -- deferred, see above

        try:
            return version("cxone-eventbridge")
        except PackageNotFoundError:  # pragma: no cover -- running from a source tree without installing
            return "0.0.0"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
