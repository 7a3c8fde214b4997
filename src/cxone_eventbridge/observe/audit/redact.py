"""Redaction: the audit log's second line of defence against writing a secret.

The records the audit log writes carry no secret fields; :func:`redact` scrubs anything that looks like
one anyway, by key (``signingSecret``, ``password``, ``apiKey``, an ``authentication`` mapping's
``value``, ...), by type (``SecretStr``) and by shape (``whsec_...``, ``Bearer ...``, ``Basic ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|authorization|api[_-]?key|credential|private[_-]?key|ingest[_-]?key)",
    re.IGNORECASE,
)
# Values that are secrets whatever key they sit under: signing secrets and bearer credentials.
_SECRET_VALUE = re.compile(r"^(whsec_\S+|bearer\s+\S+|basic\s+\S+)$", re.IGNORECASE)


def redact(value: Any, *, key: str = "") -> Any:
    """A JSON-ready copy of ``value`` with anything secret-looking replaced by ``[redacted]``.

    Keys that name a secret (``signingSecret``, ``password``, ``apiKey``, ...), an ``authentication``
    mapping's ``value``, ``SecretStr`` instances and strings shaped like a signing secret or a bearer
    credential are all replaced; the audit records carry no secrets, this is the second line of defence.
    """
    # The common types first, by exact type: this runs on every delivery outcome.
    kind = type(value)
    if kind is str:
        return REDACTED if _SECRET_VALUE.match(value.strip()) else value
    if value is None or kind is bool or kind is int or kind is float:
        return value
    if isinstance(value, dict | Mapping):
        auth = key.lower() == "authentication"
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if v is not None and (_SECRET_KEY.search(name) or (auth and name == "value")):
                out[name] = REDACTED
            else:
                out[name] = redact(v, key=name)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, key=key) for v in value]
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.match(value.strip()) else value
    if isinstance(value, bool | int | float):
        return value
    return str(value)
