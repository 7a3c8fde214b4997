"""cxone-eventbridge: manage NICE CXone integration targets and route contact-center events to them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxone-eventbridge")
except PackageNotFoundError:  # pragma: no cover -- running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
