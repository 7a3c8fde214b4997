"""`cxeb router`: run the router (`serve`) and talk to a running one; the group and its command modules.

One module per command group, each with a ``register(router_app)``: ``router_send`` (send),
``router_status`` (status), ``router_dlq`` (dlq list|replay|purge), ``router_targets`` (enable),
``router_tail`` (tail), ``router_run`` (migrate, serve). What the talking commands share (options,
``call_router``, ``show``) is in ``router_connection``. A new command group is a new module and one entry in
``COMMAND_MODULES``; modules import heavy libraries only inside their commands (tests/cli/test_startup.py).
"""

from __future__ import annotations

import typer

from cxone_eventbridge.cli import (
    router_config,
    router_dlq,
    router_events,
    router_run,
    router_send,
    router_status,
    router_tail,
    router_targets,
)

router_commands = typer.Typer(
    help="Run the event router and talk to a running one.", no_args_is_help=True, rich_markup_mode=None
)

COMMAND_MODULES = (
    router_dlq,
    router_send,
    router_status,
    router_targets,
    router_run,
    router_tail,
    router_config,
    router_events,
)


def register(app: typer.Typer) -> None:
    """Add the ``router`` group, with every command module's commands, to the root app."""
    for module in COMMAND_MODULES:
        module.register(router_commands)
    app.add_typer(router_commands, name="router")
