"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `cxeb router serve` with traffic."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from cxone_eventbridge.sandbox.receiver import ReceiverConfig, RunningReceiver, start_receiver

from .conftest import KEY, RouterFactory, RouterProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The screenshot the test keeps; CI can collect it from here.
ARTIFACTS = Path(os.environ.get("CXEB_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# As the machine's notes say: no background connections (the network is closed), no GPU, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 900}


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where the test keeps its screenshot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A headless Chromium context with an empty profile, at a laptop's width."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=LAPTOP,
        )
        try:
            yield context
        finally:
            await context.close()


async def keep_sending(router: RouterProcess, stop: asyncio.Event) -> None:
    """Live traffic: a few events every 100 ms until stopped."""
    n = 0
    while not stop.is_set():
        await router.send([{"id": f"call-{n}-{i}", "eventType": "call.ended"} for i in range(4)])
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def wait_for_dataset(page: Page, chart: str, limit_ms: float = 20_000) -> dict[str, Any]:
    """Wait until a chart has drawn a point above zero; its per-series point counts."""
    await page.wait_for_function(
        f"() => Number(document.getElementById('{chart}')?.dataset.nonzero || 0) > 0", timeout=limit_ms
    )
    points: dict[str, Any] = await page.evaluate(f"JSON.parse(document.getElementById('{chart}').dataset.points)")
    return points


async def test_dashboard_draws_live_traffic_and_replays_a_dead_letter(
    browser: BrowserContext,
    https_receiver: Callable[..., Awaitable[RunningReceiver]],
    router_process: RouterFactory,
    receiver_certs_dir: Path,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    """Key asked once (never in the URL), charts draw non-empty series, replay delivers a dead letter."""
    healthy = await https_receiver()
    broken = await https_receiver(status=400)
    billing_port = broken.port
    targets: list[dict[str, Any]] = [
        {"name": "crm", "endpoint": f"{healthy.url}/hooks/crm", "eventPattern": {"eventType": ["call.ended"]}},
        {
            "name": "billing",
            "endpoint": f"{broken.url}/hooks/billing",
            "eventPattern": {"eventType": ["invoice.failed"]},
        },
    ]
    router = await router_process(targets, receiver=healthy, args=("--archive-days", "1"))
    await router.send([{"id": "invoice-42", "eventType": "invoice.failed"}])
    stop = asyncio.Event()
    traffic = asyncio.create_task(keep_sending(router, stop))
    try:
        page = await browser.new_page()
        await page.goto(f"{router.url}/ui")
        await page.fill("#key-input", KEY)
        await page.click("#key-form button[type=submit]")
        await page.wait_for_selector("#main:not([hidden])")
        assert KEY not in page.url
        assert await page.evaluate("sessionStorage.getItem('cxeb-router-key')") == KEY

        throughput = await wait_for_dataset(page, "chart-throughput")
        assert throughput["accepted"] > 0
        assert throughput["delivered"] > 0
        latency = await wait_for_dataset(page, "chart-latency")
        assert latency["p50"] > 0
        assert latency["p99"] > 0
        queue = await wait_for_dataset(page, "chart-queue")  # the dead letter, at least
        assert queue["dead letters"] > 0

        row = page.locator('#dead-letters tr[data-event-id="invoice-42"]')
        await row.wait_for()
        assert "status 400" in await row.inner_text()
        billing = page.locator('#targets tr[data-target="billing"]')
        assert (await billing.locator("td").nth(4).inner_text()) == "1"  # dead
        # The dead letter's event id opens its history: the delivery and its one attempt.
        await row.locator("button.link").click()
        history = page.locator("#history:not([hidden])")
        await history.wait_for()
        text = await history.inner_text()
        assert "billing" in text
        assert "dead (permanent)" in text
        assert "status_4xx" in text
        assert "invoice-42" in await page.locator("#history-summary").inner_text()
        # Mend the endpoint (a 200 receiver on the same port), then replay from the page.
        await broken.stop()
        mended = await start_receiver(
            ReceiverConfig(certs_dir=receiver_certs_dir, port=billing_port, record_path=tmp_path / "mended.jsonl")
        )
        await row.locator("button[data-action=replay]").click()
        await row.wait_for(state="detached", timeout=20_000)
        await page.wait_for_function(
            "() => document.querySelector('#targets tr[data-target=\"billing\"] td:nth-child(3)')?.textContent === '1'",
            timeout=20_000,
        )
        assert mended.request_count == 1
        await mended.stop()
        # Its history now shows the failed attempt and the one that delivered it.
        await page.fill("#history-input", "invoice-42")
        await page.click("#history-form button[type=submit]")
        await page.wait_for_function("() => document.getElementById('history').innerText.includes('delivered')")
        attempts = await page.locator("#history tbody tr").all_inner_texts()
        assert len(attempts) == 2
        assert "400" in attempts[0]
        assert "200" in attempts[1]
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
    finally:
        stop.set()
        await traffic


async def test_a_wrong_key_is_refused_and_asked_again(
    browser: BrowserContext,
    https_receiver: Callable[..., Awaitable[RunningReceiver]],
    router_process: RouterFactory,
) -> None:
    """A refused key shows the key form again with the reason; no data is shown."""
    receiver = await https_receiver()
    router = await router_process([{"name": "crm", "endpoint": f"{receiver.url}/hooks/crm"}], receiver=receiver)
    page = await browser.new_page()
    await page.goto(f"{router.url}/ui")
    await page.fill("#key-input", "not-the-key-0123456789")
    await page.click("#key-form button[type=submit]")
    await page.wait_for_function("() => document.getElementById('key-error').textContent.includes('refused')")
    assert await page.locator("#main").is_hidden()
