"""The patrol page in a real browser (Debian's chromium driven by Playwright, a phone-sized
context, a fake camera showing a stall's real signed code) against an inspection service on the
real broker and redis-server, on the real clock (the phone's clock is the real one too).

A patrol signs in with a token, scans a booked stall by camera with a photo and an observed
violation and sees "compliant" at once; the scan is in the district's enforcement record. Then,
without a network, two scans wait on the phone, the page still opens (service worker), and both
reach the service when the network is back, each with the time it was taken. A street report at
the phone's location lists the market with free stalls; the English switch works. No console
errors, no failed requests but those of the network being away, no serious accessibility
violations; screenshots under ``test-artifacts/``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from playwright.async_api import FilePayload, Geolocation, Page, expect

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Event
from contracts.events import BookingCreated, MarketChanged, StallChanged
from inspection.app import create_app
from inspection.config import InspectionSettings
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ
from stallkit.messaging import publish_event
from stalltest.browser import PHONE, axe_violations, chromium, qr_y4m, screenshot, watch
from stalltest.inspection import Eventually, Serve, code, tiny_png
from stalltest.tokens import bearer, dev_token

pytestmark = pytest.mark.integration

MARKET_ID = "XZ-97"
STALLS = [f"{MARKET_ID}-A{n:03d}" for n in range(1, 5)]
BOOKED, VENDOR = STALLS[0], "vd_alice_patrol"
HERE = Geolocation(latitude=22.3004, longitude=113.5504)  # some 60 m from the market
ALL_DAY = MarketWindow(
    id="allday", name_zh="全天", name_en="All day", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(0, 0), end=time(23, 59),
)  # fmt: skip
PATROL_SUB = "patrol-xz-page"


def scene(today: Any) -> list[Event]:
    """A Xiangzhou market open all day with four cooked-food stalls, the first booked today."""
    market = Market(
        id=MARKET_ID,
        district=District.XIANGZHOU,
        name_zh="香洲巡查测试市场",
        name_en="Xiangzhou patrol test market",
        location=Location(lat=22.3000, lon=113.5500),
        zones=[Category.COOKED_FOOD],
        windows=[ALL_DAY],
    )
    events: list[Event] = [MarketChanged(market_id=MARKET_ID, market=market)]
    events += [
        StallChanged(
            market_id=MARKET_ID,
            stall=Stall(id=s, market_id=MARKET_ID, category=Category.COOKED_FOOD),
        )
        for s in STALLS
    ]
    events.append(
        BookingCreated(
            market_id=MARKET_ID,
            booking_id="bk_patrol_page_1",
            vendor_id=VENDOR,
            stall_id=BOOKED,
            date=today,
            window_id=ALL_DAY.id,
            category=Category.COOKED_FOOD,
            starts_at=datetime.combine(today, time(0, 0), MARKET_TZ),
            ends_at=datetime.combine(today, time(23, 59), MARKET_TZ),
            priority=False,
        )
    )
    return events


@pytest.fixture
async def client(
    inspection_settings: InspectionSettings,
    tmp_path: Path,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
) -> httpx.AsyncClient:
    """The service on a real port (the camera needs a secure context: http://127.0.0.1 is one),
    with the scene projected."""
    settings = inspection_settings.model_copy(update={"evidence_dir": tmp_path / "evidence"})
    client = await serve(create_app(settings, configure_logs=False))
    now = datetime.now(UTC)
    for event in scene(now.astimezone(MARKET_TZ).date()):
        await publish_event(publisher, settings, event, time=now)
    admin = bearer(dev_token(Role.ADMIN, "admin-1"))

    async def projected() -> bool:
        r = await client.get(
            f"/v1/stalls/{BOOKED}/expected", params={"window_id": ALL_DAY.id}, headers=admin
        )
        return r.status_code == 200 and r.json()["district"] == "xiangzhou"

    await eventually(projected)
    return client


async def recorded_scans(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The scans in Xiangzhou's enforcement record, oldest first."""
    office = bearer(dev_token(Role.DISTRICT, "district-xz-1", district="xiangzhou"))
    r = await client.get("/v1/record/export", params={"district": "xiangzhou"}, headers=office)
    assert r.status_code == 200, r.text
    return [e["data"] for e in r.json()["entries"] if e and e["kind"] == "scan"]


async def no_serious_violations(page: Page) -> None:
    found = await axe_violations(page)
    assert found == [], found


async def test_a_patrol_scans_by_camera_offline_and_back_online(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    camera = qr_y4m(code(BOOKED), tmp_path / "stall-code.y4m")
    patrol = dev_token(Role.PATROL, PATROL_SUB, district="xiangzhou")
    async with chromium(camera=camera) as browser:
        context = await browser.new_context(
            **PHONE,
            base_url=str(client.base_url),
            geolocation=HERE,
            permissions=["geolocation", "camera"],
        )
        page = await context.new_page()
        problems = watch(page, offline_ok=True)
        try:
            await page.goto("/app/")
            await expect(page.locator("h1")).to_have_text("巡查执法")
            await expect(page.locator("body")).to_have_attribute("data-ready", "true")

            # A vendor's token is no staff token; the patrol's signs in.
            await page.fill("#token", dev_token(Role.VENDOR, "vd_someone"))
            await page.click("#sign-in-form button[type=submit]")
            await expect(page.locator("#sign-in-error")).to_contain_text("vendor")
            await page.fill("#token", patrol)
            await page.click("#sign-in-form button[type=submit]")
            await expect(page.locator("#who")).to_contain_text(PATROL_SUB)
            await expect(page.locator("#who")).to_contain_text("巡查员")
            await expect(page.locator("#violations input[value=litter]")).to_have_count(1)
            await screenshot(page, "patrol-signed-in")

            # The booked vendor at the stall, litter seen, a photo: scanned by camera.
            await page.fill("#vendor-id", VENDOR)
            await page.click("#violations-box summary")
            await page.check("#violations input[value=litter]")
            photo = tiny_png(4, 3)
            await page.set_input_files(
                "#photo", files=[FilePayload(name="stall.png", mimeType="image/png", buffer=photo)]
            )
            await expect(page.locator("#photos img")).to_have_count(1)
            await page.click("#scan-start")
            outcome = page.locator("#outcome")
            await expect(outcome).to_have_attribute("data-outcome", "compliant", timeout=20_000)
            await expect(outcome).to_have_attribute("data-kind", "ok")
            await expect(outcome).to_contain_text("合规")
            await expect(page.locator("#outcome-details")).to_contain_text("乱扔垃圾")  # warning
            await expect(page.locator("#camera")).to_be_hidden()  # the camera is released
            [first] = await recorded_scans(client)
            assert (first["stall_id"], first["outcome"], first["patrol_id"]) == (
                BOOKED,
                "compliant",
                PATROL_SUB,
            )
            assert (first["vendor_id"], first["violations"]) == (VENDOR, ["litter"])
            assert first["photos"] == [hashlib.sha256(photo).hexdigest()]
            await no_serious_violations(page)
            await screenshot(page, "patrol-compliant")

            # Typed: an altered code is forged; text that names no stall is refused (a 4xx is
            # shown, not queued).
            genuine = code(STALLS[1]).split(".")
            altered = ".".join([genuine[0], STALLS[2], *genuine[2:]])
            await page.check("input[name=occupied][value=no]")
            await page.fill("#code", altered)
            await page.click("#manual-form button[type=submit]")
            await expect(outcome).to_have_attribute("data-outcome", "forged_code")
            await expect(outcome).to_have_attribute("data-kind", "bad")
            await expect(outcome).to_contain_text("伪造摊位码")
            await page.check("input[name=occupied][value=no]")
            await page.fill("#code", "not-a-stall-code")
            await page.click("#manual-form button[type=submit]")
            await expect(page.locator("#scan-error")).to_contain_text("摊位码无法识别")
            await expect(page.locator("#queue-count")).to_have_text("0")
            assert [s["outcome"] for s in await recorded_scans(client)] == [
                "compliant",
                "forged_code",
            ]

            # The page is controlled by its service worker before the network goes away.
            await page.wait_for_function("navigator.serviceWorker.controller !== null")

            # Offline: one scan by camera, one typed (an empty stall); both wait on the phone.
            await context.set_offline(True)
            await expect(page.locator("#network")).to_be_visible()
            await page.fill("#vendor-id", VENDOR)
            await page.click("#scan-start")
            await expect(outcome).to_have_attribute("data-outcome", "queued", timeout=20_000)
            await page.check("input[name=occupied][value=no]")
            await page.fill("#code", code(STALLS[3]))
            await page.click("#manual-form button[type=submit]")
            await expect(page.locator("#queue-count")).to_have_text("2")
            await page.click("nav.tabs button[data-tab=queue]")
            queued = page.locator("#queue li[data-key]")
            await expect(queued).to_have_count(2)
            observed = [await li.get_attribute("data-observed-at") for li in await queued.all()]
            keys = [await li.get_attribute("data-key") for li in await queued.all()]
            assert all(o and o.endswith("+08:00") for o in observed), observed
            await no_serious_violations(page)
            await screenshot(page, "patrol-offline-queue")

            # The page opens without a network, the queue still there.
            reloaded = await page.reload()
            assert reloaded is not None
            assert reloaded.from_service_worker
            await expect(page.locator("h1")).to_have_text("巡查执法")
            await page.click("nav.tabs button[data-tab=queue]")
            await expect(page.locator("#queue-count")).to_have_text("2")
            assert len(await recorded_scans(client)) == 2

            # Back online: both are sent, each with the time it was taken.
            went_online = datetime.now(UTC)
            await context.set_offline(False)
            await expect(page.locator("#queue-count")).to_have_text("0", timeout=20_000)
            await expect(page.locator("#sent li[data-outcome=compliant]")).to_have_count(2)
            _, _, *sent = await recorded_scans(client)
            assert [s["stall_id"] for s in sent] == [BOOKED, STALLS[3]]
            assert [s["occupied"] for s in sent] == [True, False]
            times = [datetime.fromisoformat(s["observed_at"]) for s in sent]
            assert times == [datetime.fromisoformat(o) for o in observed if o]
            assert times[0] < times[1] < went_online
            assert all(
                datetime.fromisoformat(s["recorded_at"]) >= went_online - timedelta(seconds=1)
                for s in sent
            )
            assert len(set(keys)) == 2

            # Street vending here: recorded, and the market with room nearby is named.
            await page.click("nav.tabs button[data-tab=street]")
            await page.click("#locate")
            await expect(page.locator("#lat")).to_have_value("22.300400")
            await page.select_option("#category", "cooked_food")
            await page.click("#street-form button[type=submit]")
            market = page.locator(f"#markets li[data-market='{MARKET_ID}']")
            await expect(market).to_contain_text("香洲巡查测试市场")
            await expect(market).to_contain_text("空摊位 3 个")
            await expect(market).to_contain_text("米")  # some 60 m away
            await no_serious_violations(page)
            await screenshot(page, "patrol-street")

            # English.
            await page.click("#language")
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            await expect(page.locator("h1")).to_have_text("Patrol inspection")
            await expect(market).to_contain_text("Xiangzhou patrol test market")
            await page.click("nav.tabs button[data-tab=queue]")
            await expect(page.locator("#sent li[data-outcome=compliant]").first).to_contain_text(
                "Compliant"
            )
            await page.click("nav.tabs button[data-tab=scan]")
            await expect(page.locator("#scan-start")).to_have_text("Open the camera to scan")
            await no_serious_violations(page)
            await screenshot(page, "patrol-english")
        finally:
            await context.close()
    # Chromium logs every 4xx answer to the console; the one 422 the test asked for is expected.
    refused = "console: Failed to load resource: the server responded with a status of 422"
    assert [p for p in problems if p.startswith(refused)] == [f"{refused} (Unprocessable Entity)"]
    assert [p for p in problems if not p.startswith(refused)] == []
