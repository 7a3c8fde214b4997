"""A router in its own process, for the crash test: ``python router_process.py MODE DB URL CA COUNT``.

``ingest`` mode accepts COUNT events in batches of 10 and writes each accepted id to stdout (one per
line, flushed) only after ingest returned, i.e. after the durable commit; then it keeps delivering.
``drain`` mode accepts nothing and exits 0 once nothing is pending or leased.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.ssrf import EgressPolicy

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def main(mode: str, db: str, url: str, ca: str, count: int) -> int:
    target = IntegrationTarget(
        name="crm",
        endpoint=url + "/hooks/crm",
        signing_secret=SecretStr(SECRET),
        retry_policy=RetryPolicy(max_retries=10),
    )
    options = DispatcherOptions(retry_base_s=0.01, retry_cap_s=0.05, poll_interval_s=0.02, per_target_in_flight=8)
    config = RouterConfig(
        queue_url=sqlite_url(Path(db)),
        owner="crash-test",
        dispatcher=options,
        egress=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=ssl_context_for(ca),
    )
    router = build_router(config, targets=[target])
    await router.start()
    out = sys.stdout
    if mode == "ingest":
        for start in range(0, count, 10):
            ids = await router.ingest([{"id": f"e{i}", "eventType": "call.ended"} for i in range(start, start + 10)])
            out.write("".join(f"{event_id}\n" for event_id in ids))
            out.flush()
        await asyncio.Event().wait()  # keep delivering until killed
    while True:
        stats = await router.stats()
        if stats.pending == 0 and stats.leased == 0:
            break
        await asyncio.sleep(0.02)
    await router.stop(deadline_s=1.0)
    out.write("drained\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
