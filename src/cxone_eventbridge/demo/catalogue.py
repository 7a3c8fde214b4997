"""The catalogue of synthetic contact-center events: the demo's stream and ``cxeb trigger`` use it.

``examples/generate_events.py`` draws ``examples/events.jsonl`` from it (seeded, so the file is
reproducible); ``cxeb trigger EVENT_TYPE`` sends one event of a chosen type, stamped now.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

SKILLS = [("1001", "Billing"), ("1002", "Tech Support"), ("1003", "Sales"), ("1004", "Retention")]
TEAMS = ["North", "South", "Nearshore", "Overflow"]
CHANNELS = ["voice", "chat", "email", "sms"]
TAGS = ["vip", "callback", "survey", "escalated", "new-customer", "spanish"]


@dataclass(frozen=True, slots=True)
class EventType:
    """One kind of event: its name, how common it is in the demo's stream, its priority and what it means."""

    name: str
    weight: int
    priority: int  # 0 (first) to 9 (last): how the demo sends it
    description: str


EVENT_TYPES = (
    EventType("contact.queued", 3, 6, "a contact entered a skill's queue"),
    EventType("call.answered", 3, 5, "an agent answered a voice call"),
    EventType("call.abandoned", 1, 2, "a caller hung up before an agent answered"),
    EventType("contact.ended", 3, 5, "a contact finished, on any channel"),
    EventType("chat.message.received", 2, 6, "a chat message arrived from a customer"),
    EventType("email.received", 1, 8, "an email arrived in a skill's queue"),
    EventType("agent.state.changed", 3, 7, "an agent became available, on a contact, unavailable or in ACW"),
    EventType("sentiment.scored", 2, 4, "a contact's sentiment was scored"),
    EventType("queue.threshold.exceeded", 1, 0, "a queue's depth or wait passed its alert threshold"),
)
BY_NAME = {event_type.name: event_type for event_type in EVENT_TYPES}


def timestamp_text(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, as the events carry it."""
    return moment.isoformat().replace("+00:00", "Z")


def make_event(
    rng: random.Random, *, event_type: EventType, event_id: str, timestamp: datetime, tenant_id: str = "tenant-demo"
) -> dict[str, Any]:
    """A realistic event of ``event_type``: contact, skill and queue, agent, metrics, source, tags."""
    skill_id, skill_name = rng.choice(SKILLS)
    name = event_type.name
    channel = (
        "voice"
        if name.startswith("call.")
        else "chat"
        if name.startswith("chat.")
        else ("email" if name.startswith("email.") else rng.choice(CHANNELS))
    )
    wait = round(rng.expovariate(1 / 45), 1)
    return {
        "id": event_id,
        "eventType": name,
        "timestamp": timestamp_text(timestamp),
        "tenantId": tenant_id,
        "priority": event_type.priority,
        "contact": {
            "id": f"c-{rng.randrange(10**9):09d}",
            "channel": channel,
            "direction": rng.choice(["inbound", "inbound", "outbound"]),
            "ani": f"+1555{rng.randrange(10**7):07d}",
            "skill": {"id": skill_id, "name": skill_name},
            "queue": {"name": f"{skill_name} Queue", "depth": rng.randrange(0, 40)},
        },
        "agent": {
            "id": f"agent-{rng.randrange(1, 250):03d}",
            "team": rng.choice(TEAMS),
            "state": rng.choice(["Available", "OnContact", "Unavailable", "ACW"]),
        },
        "metrics": {
            "waitSeconds": wait,
            "handleSeconds": round(rng.uniform(30, 900), 1),
            "sentimentScore": round(rng.uniform(-1, 1), 2),
        },
        "source": {"ip": f"203.0.113.{rng.randrange(1, 255)}", "region": rng.choice(["na1", "eu1", "au1"])},
        "tags": rng.sample(TAGS, rng.randrange(0, 3)),
    }


def demo_stream(count: int, *, seed: int, start: datetime) -> list[dict[str, Any]]:
    """The demo's stream: ``count`` events of weighted random types, 250 ms apart."""
    rng = random.Random(seed)  # noqa: S311 -- demo data, not security
    weights = [event_type.weight for event_type in EVENT_TYPES]
    events = []
    for index in range(count):
        event_type = rng.choices(EVENT_TYPES, weights=weights)[0]
        moment = start + timedelta(milliseconds=index * 250)
        events.append(make_event(rng, event_type=event_type, event_id=f"evt-{index:06d}", timestamp=moment))
    return events
