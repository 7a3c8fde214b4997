"""The control-plane client: OAuth2, retries, pacing, and the targets resource.

::

    from cxone_eventbridge.api import CXoneClient

    async with CXoneClient.from_settings(Settings()) as client:
        async for target in client.targets.list():
            ...
"""

from cxone_eventbridge.api._auth import AccessToken, ClientCredentials, OAuth2Auth
from cxone_eventbridge.api._client import ROUTES_PATH, CXoneClient
from cxone_eventbridge.api._discovery import DiscoveredEndpoints, discover
from cxone_eventbridge.api._errors import error_from_response, error_from_transport
from cxone_eventbridge.api._http import IDEMPOTENCY_HEADER, RequestSender, RetryConfig
from cxone_eventbridge.api._rate_limit import RateLimiter
from cxone_eventbridge.api._targets import (
    TARGETS_PATH,
    CreateAndTestResult,
    RotatedSecret,
    TargetsResource,
    VersionedTarget,
    request_body,
)

__all__ = [
    "IDEMPOTENCY_HEADER",
    "ROUTES_PATH",
    "TARGETS_PATH",
    "AccessToken",
    "CXoneClient",
    "ClientCredentials",
    "CreateAndTestResult",
    "DiscoveredEndpoints",
    "OAuth2Auth",
    "RateLimiter",
    "RequestSender",
    "RetryConfig",
    "RotatedSecret",
    "TargetsResource",
    "VersionedTarget",
    "discover",
    "error_from_response",
    "error_from_transport",
    "request_body",
]
