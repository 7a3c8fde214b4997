"""A dry run: which targets an event reaches and what each would receive, without sending anything.

``cxeb match -f targets.yaml`` and the router's ``POST /v1/match`` answer with these previews; the body
is what delivery would send (``transform.py``), shown as JSON when it is JSON and as text otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.transform import JSON_CONTENT_TYPE, DeliveryContext, target_input
from cxone_eventbridge.wire import encode_event


@dataclass(frozen=True, slots=True)
class Preview:
    """What one target would receive for one event."""

    target: str
    content_type: str
    body: bytes

    def to_wire(self) -> dict[str, Any]:
        """``{target, contentType, body}``; ``body`` is the JSON value, or the text for a text body."""
        text = self.body.decode("utf-8", errors="replace")
        body: Any = json.loads(text) if self.content_type == JSON_CONTENT_TYPE else text
        return {"target": self.target, "contentType": self.content_type, "body": body}


def preview(targets: Iterable[IntegrationTarget], event: dict[str, Any], *, now: float) -> list[Preview]:
    """The payload each of ``targets`` (those the event matched) would receive, in the given order."""
    encoded = encode_event(event)
    event_id = event.get("id")
    context_id = event_id if isinstance(event_id, str) else ""
    previews = []
    for target in targets:
        shaped = target_input(target)
        if shaped is None:
            previews.append(Preview(target.name, JSON_CONTENT_TYPE, encoded))
            continue
        payload = shaped.render(encoded, DeliveryContext(context_id, now, target.name, target.id))
        previews.append(Preview(target.name, payload.content_type, payload.body))
    return previews
