"""``cxeb demo`` as a library: the whole product on loopback, step by step (see ``demo.run``)."""

from cxone_eventbridge.demo.options import DemoOptions
from cxone_eventbridge.demo.results import DemoResult
from cxone_eventbridge.demo.run import DemoListener, run_demo
from cxone_eventbridge.exceptions import DemoError

__all__ = ["DemoError", "DemoListener", "DemoOptions", "DemoResult", "run_demo"]
