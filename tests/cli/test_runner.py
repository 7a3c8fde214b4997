"""The CLI's edge maps each kind of error to its exit code and one message, never a traceback."""

from __future__ import annotations

import pytest
import typer

from cxone_eventbridge.cli import runner
from cxone_eventbridge.exceptions import (
    APIConnectionError,
    CxebError,
    FieldError,
    InternalServerError,
    TargetsFileError,
    UnprocessableEntityError,
)


async def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TargetsFileError("targets.yaml: 1 invalid field"), 2),
        (
            UnprocessableEntityError(
                "the server refused the target",
                status_code=422,
                errors=[FieldError("retryPolicy.maxRetries", "must be <= 10")],
            ),
            2,
        ),
        (InternalServerError("the server failed", status_code=503), 1),
        (APIConnectionError("connection refused"), 1),
        (CxebError("something else"), 1),
    ],
)
def test_exit_codes(error: Exception, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid input (ours or the server's 422) exits 2; API, network and runtime errors exit 1."""
    with pytest.raises(typer.Exit) as info:
        runner.run(_raise(error))
    assert info.value.exit_code == code
    err = capsys.readouterr().err
    assert "error:" in err
    assert "Traceback" not in err
    if isinstance(error, UnprocessableEntityError):
        assert "retryPolicy.maxRetries" in err
