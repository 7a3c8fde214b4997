"""Asking before a command destroys something: on a terminal a prompt, elsewhere a refusal naming ``--yes``.

Like Terraform without ``-auto-approve``, a deletion never happens by accident in a script or a pipe: with no
terminal to ask on and no ``--yes``, the command exits 2 before it changes anything.
"""

from __future__ import annotations

import sys

import typer

from cxone_eventbridge.cli import render


def confirm_deletion(question: str, *, yes: bool, refusal: str) -> None:
    """Return when the deletion may go ahead; otherwise exit (1 when the user said no, 2 when nobody could)."""
    if yes:
        return
    if not sys.stdin.isatty():
        render.fail(f"{refusal}: no terminal to ask on; pass --yes to delete", render.EXIT_INVALID_INPUT)
    if not typer.confirm(question):
        render.fail("nothing was deleted", render.EXIT_ERROR)
