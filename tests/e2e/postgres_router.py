"""One router of the scale-out test, in its own process:
``python postgres_router.py QUEUE_URL URL PACED_URL CA FIRST COUNT``.

It serves three targets on the receiver at URL (``bulk``, ``capped`` with maxInFlight 4) and PACED_URL
(``paced`` with rateLimitPerSecond 50), ingests events FIRST .. FIRST+COUNT-1 in batches of 100 (see
``kind_of``), writes each accepted id to stdout only after ingest returned (after the commit), then
keeps delivering until killed.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.router.composition import RouterConfig, build_router
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.ssrf import EgressPolicy

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


SHARE = 6_667  # each router's share of the test's 20,000 events (FIRST is a multiple of it)
PACED_PER_ROUTER = 170


def kind_of(index: int) -> str:
    """The first 170 events of each router's share go to ``paced``: each router starts with a backlog of
    them, so the three routers compete for its send slots for about ten seconds (510 at under 50/s).
    Then one event in 20 goes to ``capped``, the rest to ``bulk``."""
    if index % SHARE < PACED_PER_ROUTER:
        return "paced"
    if index % 20 == 1:
        return "capped"
    return "bulk"


def targets(url: str, paced_url: str) -> list[IntegrationTarget]:
    limits = {"bulk": {}, "capped": {"max_in_flight": 4}, "paced": {"rate_limit_per_second": 50.0}}
    return [
        IntegrationTarget(
            name=name,
            endpoint=f"{paced_url if name == 'paced' else url}/hooks/{name}",
            signing_secret=SecretStr(SECRET),
            retry_policy=RetryPolicy(max_retries=10),
            event_pattern={"kind": [name]},
            **extra,
        )
        for name, extra in limits.items()
    ]


async def main(queue_url: str, url: str, paced_url: str, ca: str, first: int, count: int) -> None:
    options = DispatcherOptions(
        lease_s=3.0, poll_interval_s=0.05, housekeeping_interval_s=0.5, retry_base_s=0.05, retry_cap_s=0.2
    )
    config = RouterConfig(
        queue_url=queue_url,
        owner=f"router-{first}",
        migrate=True,
        dispatcher=options,
        egress=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=ssl_context_for(ca),
    )
    router = build_router(config, targets=targets(url, paced_url))
    await router.start()
    out = sys.stdout
    for start in range(first, first + count, 100):
        batch = [{"id": f"e{i}", "kind": kind_of(i)} for i in range(start, min(start + 100, first + count))]
        ids = await router.ingest(batch)
        out.write("".join(f"{event_id}\n" for event_id in ids))
        out.flush()
    out.write("ingested\n")
    out.flush()
    await asyncio.Event().wait()  # keep delivering until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])))
