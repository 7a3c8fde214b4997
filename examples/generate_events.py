"""Write examples/events.jsonl: 10,000 realistic contact-center events, deterministic (seeded).

Run: python examples/generate_events.py [COUNT] > examples/events.jsonl
Each line is one event; its ``priority`` (0-9, lower first) says how the demo sends it. The event types
and their shape are the package's catalogue (``cxone_eventbridge.demo.catalogue``), which ``cxeb trigger``
sends one at a time.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from cxone_eventbridge.demo.catalogue import demo_stream


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    events = demo_stream(count, seed=20261129, start=datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    sys.stdout.write("\n".join(json.dumps(event, separators=(",", ":")) for event in events) + "\n")


if __name__ == "__main__":
    main()
