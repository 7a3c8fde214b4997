"""Write examples/events.jsonl: 10,000 realistic contact-center events, deterministic (seeded).

Run: python examples/generate_events.py [COUNT] > examples/events.jsonl
Each line is one event; its ``priority`` (0-9, lower first) says how the demo sends it.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta

SKILLS = [("1001", "Billing"), ("1002", "Tech Support"), ("1003", "Sales"), ("1004", "Retention")]
TEAMS = ["North", "South", "Nearshore", "Overflow"]
CHANNELS = ["voice", "chat", "email", "sms"]
EVENT_TYPES = [
    ("contact.queued", 3, 6),
    ("call.answered", 3, 5),
    ("call.abandoned", 1, 2),
    ("contact.ended", 3, 5),
    ("chat.message.received", 2, 6),
    ("email.received", 1, 8),
    ("agent.state.changed", 3, 7),
    ("sentiment.scored", 2, 4),
    ("queue.threshold.exceeded", 1, 0),
]


def make_event(rng: random.Random, index: int, start: datetime) -> dict[str, object]:
    event_type, _, priority = rng.choices(EVENT_TYPES, weights=[w for _, w, _ in EVENT_TYPES])[0]
    skill_id, skill_name = rng.choice(SKILLS)
    channel = "voice" if event_type.startswith("call.") else "chat" if event_type.startswith("chat.") else (
        "email" if event_type.startswith("email.") else rng.choice(CHANNELS)
    )
    wait = round(rng.expovariate(1 / 45), 1)
    event: dict[str, object] = {
        "id": f"evt-{index:06d}",
        "eventType": event_type,
        "timestamp": (start + timedelta(milliseconds=index * 250)).isoformat().replace("+00:00", "Z"),
        "tenantId": "tenant-demo",
        "priority": priority,
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
        "tags": rng.sample(["vip", "callback", "survey", "escalated", "new-customer", "spanish"], rng.randrange(0, 3)),
    }
    return event


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rng = random.Random(20261129)  # noqa: S311 -- demo data, not security
    start = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    lines = [json.dumps(make_event(rng, i, start), separators=(",", ":")) for i in range(count)]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
