"""The integration target: where a webhook goes, which events it wants, what it receives, how it is retried."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    SerializationInfo,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from cxone_eventbridge import secret_refs
from cxone_eventbridge.exceptions import InvalidPatternError, InvalidTransformError
from cxone_eventbridge.matching.filters import FilterOperator, check_filter_value
from cxone_eventbridge.matching.patterns import compile_pattern
from cxone_eventbridge.models.auth import TargetAuthentication
from cxone_eventbridge.models.base import WireModel, dump_secret
from cxone_eventbridge.models.endpoints import check_endpoint
from cxone_eventbridge.models.signing import PreviousSigningSecret
from cxone_eventbridge.signing import validate_signing_secret
from cxone_eventbridge.transform import check_constant_input, compile_template, parse_json_path

MAX_FILTERS = 50


class BackoffStrategy(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class TargetStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"
    DISABLED = "disabled"


class RetryPolicy(WireModel):
    """How often and how patiently a delivery is retried."""

    max_retries: int = Field(default=3, ge=0, le=10, strict=True)
    backoff_strategy: BackoffStrategy = BackoffStrategy.EXPONENTIAL
    timeout_ms: int = Field(default=5000, ge=1000, le=30000, strict=True)


class EventFilter(WireModel):
    """The tutorial's simple filter ``{field, operator, value}``; a target's filters are ANDed."""

    field: str = Field(min_length=1, max_length=256)
    operator: FilterOperator
    value: Any = Field(default=None, validate_default=True)

    @field_validator("field")
    @classmethod
    def _field_is_a_path(cls, field: str) -> str:
        if any(not part for part in field.split(".")):
            raise ValueError(f"{field!r} is not a dotted field path (empty segment)")
        return field

    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, value: Any, info: ValidationInfo) -> Any:
        operator = info.data.get("operator")
        if operator is None:
            return value
        return check_filter_value(operator, value)


class InputTransformer(WireModel):
    """EventBridge's input transformer: variables read by JSON paths, placed into a template.

    The semantics (placeholders inside and outside quotes, missing paths, predefined variables) are in
    :mod:`cxone_eventbridge.transform`; everything is checked here, at validation, never at delivery.
    """

    input_paths_map: dict[str, str] = Field(default_factory=dict)
    input_template: str

    @field_validator("input_paths_map")
    @classmethod
    def _paths_are_json_paths(cls, paths: dict[str, str]) -> dict[str, str]:
        problems = _transform_problems(paths, "x", "inputPathsMap")
        if problems:
            raise ValueError("; ".join(problems))
        return paths

    @field_validator("input_template")
    @classmethod
    def _template_fits_its_variables(cls, template: str, info: ValidationInfo) -> str:
        paths = info.data.get("input_paths_map")
        if paths is None:
            return template  # the paths map is invalid and reported; the template is checked once it is fixed
        problems = _transform_problems(paths, template, "inputTemplate")
        if problems:
            raise ValueError("; ".join(problems))
        return template


def _transform_problems(paths: dict[str, str], template: str, field: str) -> list[str]:
    """The problems ``transform.compile_template`` finds in one of the transformer's two fields."""
    try:
        compile_template(paths, template, where="")
    except InvalidTransformError as exc:
        return [
            f"{error.field.removeprefix(field + '.')}: {error.message}" if error.field != field else error.message
            for error in exc.errors
            if error.field == field or error.field.startswith(field + ".")
        ]
    return []


_NULLABLE_WITH_DEFAULTS = ("authentication", "retryPolicy", "retry_policy", "eventFilters", "event_filters")


class IntegrationTarget(WireModel):
    """A webhook target. ``id``, ``status`` and the timestamps are set by the server."""

    id: str | None = None
    name: str = Field(min_length=1, max_length=100)
    type: Literal["webhook"] = "webhook"
    endpoint: str
    authentication: TargetAuthentication = Field(default_factory=TargetAuthentication)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    event_filters: list[EventFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    event_pattern: dict[str, Any] | None = None
    # What the target receives instead of the event (at most one; see transform.py): a constant JSON text,
    # the part of the event a JSON path finds, or an input transformer's output.
    input: str | None = None
    input_path: str | None = None
    input_transformer: InputTransformer | None = None
    description: str | None = Field(default=None, max_length=1000)
    signing_secret: SecretStr | None = None
    # Delivery limits held across every router sharing a queue (as EventBridge API destinations' rate).
    max_in_flight: int | None = Field(default=None, ge=1, le=10_000)
    rate_limit_per_second: float | None = Field(default=None, gt=0, le=10_000)
    # Read back only: the current signing secret's fingerprint, and the secret a rotation replaced while
    # its grace period lasts (set by the rotate-secret operation, never by a targets file).
    signing_secret_fingerprint: str | None = None
    previous_signing_secret: PreviousSigningSecret | None = None
    status: TargetStatus | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls_that_mean_default(cls, data: Any) -> Any:
        # The tutorial's client sends ``"retryPolicy": null`` and the like; null means "the default".
        if isinstance(data, dict) and any(data.get(key, ...) is None for key in _NULLABLE_WITH_DEFAULTS):
            return {k: v for k, v in data.items() if not (k in _NULLABLE_WITH_DEFAULTS and v is None)}
        return data

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, name: str) -> str:
        if name != name.strip():
            raise ValueError("must not start or end with whitespace")
        if any(not ch.isprintable() for ch in name):
            raise ValueError("must not contain control characters")
        return name

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_https(cls, endpoint: str) -> str:
        return check_endpoint(endpoint)

    @field_validator("event_pattern", mode="before")
    @classmethod
    def _pattern_compiles(cls, pattern: Any) -> Any:
        if pattern is None:
            return None
        try:
            compiled = compile_pattern(pattern)
        except InvalidPatternError as exc:
            raise ValueError(exc.message) from exc
        return compiled.source

    @field_validator("input")
    @classmethod
    def _input_is_json_text(cls, text: str | None) -> str | None:
        return None if text is None else check_constant_input(text)

    @field_validator("input_path")
    @classmethod
    def _input_path_is_a_json_path(cls, path: str | None) -> str | None:
        if path is not None:
            parse_json_path(path)
        return path

    @model_validator(mode="after")
    def _one_input_form(self) -> IntegrationTarget:
        given = [name for name, value in self._input_forms() if value is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} are exclusive: a target receives one of them")
        return self

    def _input_forms(self) -> list[tuple[str, object]]:
        return [("input", self.input), ("inputPath", self.input_path), ("inputTransformer", self.input_transformer)]

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret_is_whsec(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is None:
            return None
        text = secret.get_secret_value()
        if secret_refs.is_reference(text):
            return secret
        if (problem := secret_refs.reference_syntax_error(text)) is not None:
            raise ValueError(problem)
        validate_signing_secret(text)
        return secret

    @field_serializer("signing_secret")
    def _serialize_signing_secret(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        return dump_secret(secret, info)
