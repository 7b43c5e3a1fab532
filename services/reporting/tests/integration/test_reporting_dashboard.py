"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a reporting
service on the real broker and redis-server: a district officer signs in with a token, sees the
day's seeded figures, the week's fairness figures and the live occupancy of the district's
markets, switches to English, and
sees a booking made during the test arrive in the live ticker; no console errors, no failed
requests. A screenshot is saved under ``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from playwright.async_api import Browser, Locator, expect

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Event
from contracts.events import (
    BookingCheckedIn,
    BookingCreated,
    DrawCompleted,
    MarketChanged,
    ScanOutcome,
    ScanRecorded,
    StallChanged,
)
from reporting.app import create_app
from reporting.config import ReportingSettings
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ
from stallkit.messaging import publish_event
from stalltest.browser import chromium, screenshot, watch
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
Eventually = Callable[..., Awaitable[Any]]


NOW = datetime.now(UTC)
TODAY = NOW.astimezone(MARKET_TZ).date()


@pytest.fixture(autouse=True)
def _now() -> None:
    """The seeded day is the day the test runs, as the page's "today" is: not the day the module
    was imported (a suite running across midnight in Zhuhai seeded yesterday and the page showed
    an empty today)."""
    global NOW, TODAY
    NOW = datetime.now(UTC)
    TODAY = NOW.astimezone(MARKET_TZ).date()


ALL_DAY = MarketWindow(
    id="allday", name_zh="全天", name_en="All day", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(0, 0), end=time(23, 59),
)  # fmt: skip
MARKET = Market(
    id="XZ-95",
    district=District.XIANGZHOU,
    name_zh="香洲看板测试市场",
    name_en="Xiangzhou dashboard test market",
    location=Location(lat=22.27, lon=113.57),
    zones=[Category.COOKED_FOOD],
    windows=[ALL_DAY],
)
STALLS = [f"XZ-95-A{n:03d}" for n in range(1, 7)]
BOOKED = STALLS[:4]
CHECKED_IN = STALLS[:2]


def seed() -> list[Event]:
    """A market open all day with six stalls, four booked today (won in a draw a fifth vendor
    lost), two checked in, three scans."""
    events: list[Event] = [MarketChanged(market_id=MARKET.id, market=MARKET)]
    winners = [f"vd_dash_{n}" for n in range(1, len(BOOKED) + 1)]
    events.append(
        DrawCompleted(
            market_id=MARKET.id,
            date=TODAY,
            window_id=ALL_DAY.id,
            seed="0" * 64,
            result_digest="0" * 64,
            stalls=len(BOOKED),
            applicant_ids=[*winners, "vd_dash_lost"],
            priority_applicant_ids=winners[:1],
            winner_ids=winners,
        )
    )
    events += [
        StallChanged(
            market_id=MARKET.id,
            stall=Stall(id=s, market_id=MARKET.id, category=Category.COOKED_FOOD),
        )
        for s in STALLS
    ]
    day_start = datetime.combine(TODAY, time(0, 0), MARKET_TZ)
    day_end = datetime.combine(TODAY, time(23, 59), MARKET_TZ)
    for n, stall_id in enumerate(BOOKED, 1):
        common = {
            "market_id": MARKET.id,
            "booking_id": f"bk_dash_{n}",
            "vendor_id": f"vd_dash_{n}",
            "stall_id": stall_id,
            "date": TODAY,
            "window_id": ALL_DAY.id,
        }
        events.append(
            BookingCreated(
                **common,
                category=Category.COOKED_FOOD,
                starts_at=day_start,
                ends_at=day_end,
                priority=n == 1,
            )
        )
        if stall_id in CHECKED_IN:
            events.append(BookingCheckedIn(**common, checked_in_at=NOW))
    for n, outcome in enumerate(
        [ScanOutcome.COMPLIANT, ScanOutcome.COMPLIANT, ScanOutcome.BOOKED_BUT_VACANT], 1
    ):
        events.append(
            ScanRecorded(
                market_id=MARKET.id,
                district=MARKET.district,
                scan_id=f"sc_dash_{n}",
                stall_id=STALLS[n - 1],
                patrol_id="patrol-1",
                outcome=outcome,
                observed_at=NOW - timedelta(minutes=n),
            )
        )
    return events


def district_token() -> str:
    """A Xiangzhou district officer's token."""
    return dev_token(Role.DISTRICT, "district-xz-1", district="xiangzhou")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium (``make deps`` installs it); Playwright's own download is not used."""
    async with chromium() as launched:
        yield launched


async def test_a_district_officer_sees_the_figures_switches_language_and_follows_a_booking(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    browser: Browser,
) -> None:
    settings = reporting_settings
    client = await serve(create_app(settings, configure_logs=False))
    events = seed()
    for event in events:
        await publish_event(publisher, settings, event, time=NOW)

    async def counted() -> bool:
        return bool((await client.get("/v1/stats")).json()["total"] >= len(events))

    await eventually(counted, timeout=60)
    headers = {"Authorization": f"Bearer {district_token()}"}
    report = (
        await client.get("/v1/reports/daily", params={"date": TODAY.isoformat()}, headers=headers)
    ).json()
    figures = report["total"]
    assert (figures["bookings"], figures["check_ins"], figures["scans"]) == (4, 2, 3)

    context = await browser.new_context(
        base_url=str(client.base_url), viewport={"width": 1280, "height": 1800}, locale="zh-CN"
    )
    page = await context.new_page()
    problems = watch(page)
    try:
        await page.goto("/")
        await expect(page.locator("h1")).to_have_text("双限便民市场 · 区级看板")

        # A patrol token is refused with a reason; the district officer's token signs in.
        await page.fill("#token", dev_token(Role.PATROL, "patrol-1", district="xiangzhou"))
        await page.click("#sign-in-form button[type=submit]")
        await expect(page.locator("#sign-in-error")).to_contain_text("patrol")
        await page.fill("#token", district_token())
        await page.click("#sign-in-form button[type=submit]")
        await expect(page.locator("#board")).to_be_visible()
        await expect(page.locator("#district")).to_have_value("xiangzhou")
        await expect(page.locator("#district")).to_be_disabled()

        # The seeded figures, as the report API gives them.
        def figure(name: str) -> Locator:
            return page.locator(f"[data-figure={name}]")

        await expect(figure("bookings")).to_have_text(str(figures["bookings"]))
        await expect(figure("check_ins")).to_have_text(str(figures["check_ins"]))
        await expect(figure("scans")).to_have_text(str(figures["scans"]))
        await expect(figure("compliant_share")).to_have_text("66.67 %")
        await expect(figure("bookable_stall_windows")).to_have_text(str(len(STALLS)))

        # The week's fairness: stall-days [1, 1, 1, 1, 0] (the fifth applicant lost): mean 0.8,
        # 8 ordered pairs differ by 1 of 25, mean absolute difference 0.32, Gini 0.32 / 1.6.
        def fair(name: str) -> Locator:
            return page.locator(f"[data-fairness={name}]")

        await expect(fair("gini")).to_have_text("0.200")
        await expect(fair("priority_stall_day_share")).to_have_text("25.00 %")
        await expect(fair("applicant_win_share")).to_have_text("80.00 %")
        await expect(fair("active_vendors")).to_have_text("5")
        row = page.locator("#live tbody tr", has_text=MARKET.id)
        await expect(row).to_contain_text(MARKET.name_zh)
        await expect(row.locator("td")).to_have_text(
            ["00:00–23:59", str(len(STALLS)), "4", "2", "33.33 %", "4"]
        )
        for chart in ["occupancy", "scans", "violations", "disposal"]:  # drawn by ECharts
            await expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)

        # English, and back; the choice is remembered.
        await page.click("#language")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.locator("h1")).to_have_text("Double-limit markets · District dashboard")
        await expect(page.locator("#figures-title")).to_contain_text("Figures of the day")
        await expect(page.locator("#fairness-title")).to_contain_text("Fairness (this week)")
        await expect(row).to_contain_text(MARKET.name_en)
        await expect(page.locator("#language")).to_have_text("中文")

        # A booking made now shows in the ticker, in English.
        await expect(page.locator("#feed-state")).to_have_text(re.compile("live"))
        booking = BookingCreated(
            market_id=MARKET.id,
            booking_id="bk_dash_live",
            vendor_id="vd_dash_live",
            stall_id=STALLS[5],
            date=TODAY,
            window_id=ALL_DAY.id,
            category=Category.COOKED_FOOD,
            starts_at=datetime.combine(TODAY, time(0, 0), MARKET_TZ),
            ends_at=datetime.combine(TODAY, time(23, 59), MARKET_TZ),
            priority=False,
        )
        await publish_event(publisher, settings, booking, time=datetime.now(UTC))
        entry = page.locator("#ticker li[data-type='booking.created']")
        await expect(entry).to_contain_text(f"vd_dash_live booked {STALLS[5]}", timeout=20_000)
        # ... and the figures follow it.
        await expect(figure("bookings")).to_have_text("5", timeout=20_000)

        await page.click("#language")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(entry).to_contain_text(f"vd_dash_live 预约了 {STALLS[5]}")

        await screenshot(page, "reporting-dashboard")
        await page.reload()  # the tab keeps its sign-in and the language
        await expect(page.locator("#board")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    finally:
        await context.close()
    assert problems == []
