"""Wire models: the one schema that the client sends, the sandbox serves and the router routes by.

Wire JSON is camelCase; snake_case keys and the nulls that the original tutorial's client sends are
accepted too. Secrets are ``SecretStr``: they never appear in ``repr``, and they are serialized only when
the caller asks with ``to_wire(reveal_secrets=True)`` (a create or update request, the routes table).

One module per concept, every name imported from here:

- ``base``: ``WireModel`` (camelCase, unknown keys refused, write-only secrets) and ``field_errors``
  (pydantic's errors as wire field paths);
- ``endpoints``: what an https endpoint URL must be;
- ``auth``: how deliveries authenticate (``TargetAuthentication``, ``OAuthClientCredentials``);
- ``signing``: a rotated signing secret's grace period and the rotation request;
- ``target``: ``IntegrationTarget`` with its retry policy, filters and input transformation;
- ``api``: the API's other bodies (a page of targets, a test result, the routes table, the error body).
"""

from cxone_eventbridge.models.api import ErrorBody, RoutesTable, TargetPage, TargetTestResult, TestOutcome
from cxone_eventbridge.models.auth import (
    MAX_SCOPES,
    MAX_TOKEN_EXTRAS,
    OAUTH_SECRET_PATH,
    RESERVED_HEADERS,
    AuthType,
    OAuthClientCredentials,
    TargetAuthentication,
)
from cxone_eventbridge.models.base import WireModel, field_errors
from cxone_eventbridge.models.endpoints import MAX_ENDPOINT_LENGTH
from cxone_eventbridge.models.signing import (
    DEFAULT_GRACE_PERIOD_S,
    MAX_GRACE_PERIOD_S,
    PreviousSigningSecret,
    SigningSecretRotation,
)
from cxone_eventbridge.models.target import (
    MAX_FILTERS,
    BackoffStrategy,
    EventFilter,
    InputTransformer,
    IntegrationTarget,
    RetryPolicy,
    TargetStatus,
)

__all__ = [
    "DEFAULT_GRACE_PERIOD_S",
    "MAX_ENDPOINT_LENGTH",
    "MAX_FILTERS",
    "MAX_GRACE_PERIOD_S",
    "MAX_SCOPES",
    "MAX_TOKEN_EXTRAS",
    "OAUTH_SECRET_PATH",
    "RESERVED_HEADERS",
    "AuthType",
    "BackoffStrategy",
    "ErrorBody",
    "EventFilter",
    "InputTransformer",
    "IntegrationTarget",
    "OAuthClientCredentials",
    "PreviousSigningSecret",
    "RetryPolicy",
    "RoutesTable",
    "SigningSecretRotation",
    "TargetAuthentication",
    "TargetPage",
    "TargetStatus",
    "TargetTestResult",
    "TestOutcome",
    "WireModel",
    "field_errors",
]
