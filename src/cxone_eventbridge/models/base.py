"""What every wire model shares: camelCase on the wire, write-only secrets, errors as wire field paths."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, SerializationInfo, ValidationError
from pydantic.alias_generators import to_camel

from cxone_eventbridge.exceptions import FieldError

_REVEAL_SECRETS = "reveal_secrets"


class WireModel(BaseModel):
    """camelCase on the wire, snake_case accepted, unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        hide_input_in_errors=True,
    )

    def to_wire(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The JSON-ready camelCase form; secrets are null unless ``reveal_secrets``."""
        return self.model_dump(mode="json", by_alias=True, context={_REVEAL_SECRETS: reveal_secrets})


def dump_secret(value: SecretStr | None, info: SerializationInfo) -> str | None:
    """A secret field's wire form: its text only when ``to_wire(reveal_secrets=True)`` asked, else null."""
    if value is None:
        return None
    context = info.context
    if isinstance(context, dict) and context.get(_REVEAL_SECRETS):
        return value.get_secret_value()
    return None


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            segment = to_camel(part) if "_" in part else part
            path += f".{segment}" if path else segment
    return path


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as wire-form field paths and messages, never echoing input (secrets)."""
    errors: list[FieldError] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        path = _loc_to_path(tuple(error["loc"]))
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
        message = error["msg"]
        for noise in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(noise)
        if error["type"] == "extra_forbidden":
            message = "is not a known field"
        elif error["type"] == "missing":
            message = "is required"
        errors.append(FieldError(path, message))
    return errors
