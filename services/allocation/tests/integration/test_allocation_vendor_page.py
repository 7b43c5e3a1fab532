"""The vendor's page in a real browser (Debian's chromium driven by Playwright, a phone-sized
context) against the allocation service on the real broker and redis-server: a vendor registers
with the texted code, staff verify the claims, the vendor books tomorrow's evening and, the next
evening, checks in by pointing the phone's camera (Chromium's fake camera playing a video of
the stall's real QR code) at the stall. No console errors, no serious accessibility violations;
screenshots under ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from faststream.kafka import KafkaBroker
from playwright.async_api import Browser, Page, expect

from inspection.config import InspectionSettings
from stallctl import procs
from stallkit.auth import Role
from stalltest.allocation import (
    MONDAY,
    TUESDAY,
    RunningAllocation,
    identity_number,
    local,
    serve_seeded,
    set_now,
    sms_code,
)
from stalltest.browser import PHONE, axe_violations, chromium, qr_y4m, screenshot, watch
from stalltest.inspection import NOW as SCENE_NOW
from stalltest.inspection import Eventually, Serve, scene_settings, start_inspection, token
from stalltest.plugin import Infra, Isolation, SettingsFactory

pytestmark = pytest.mark.integration

STALL = "XZ-91-C001"  # daily goods, Test Night market (XZ-91), evenings 17:30-22:30
PHONE_NUMBER = "13922223333"
PASSWORD = "evening market 2026"


@pytest.fixture(scope="module")
async def svc(infra: Infra) -> AsyncIterator[RunningAllocation]:
    """The service with the small catalogue, Monday 10:00; tokens outlive the clock's moves."""
    isolation = Isolation.fresh(infra)
    async with serve_seeded(isolation, jwt_ttl_seconds=3 * 86400) as running:
        yield running


async def stall_code(svc: RunningAllocation, stall_id: str) -> str:
    """The text of the stall's printed QR code."""
    async with svc.client(svc.admin_token) as admin:
        response = await admin.get(f"/v1/admin/stalls/{stall_id}/code")
    assert response.status_code == 200, response.text
    code: str = response.json()["code"]
    return code


async def no_accessibility_problems(page: Page, where: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    violations = await axe_violations(page)
    assert violations == [], f"{where}: {violations}"


async def test_a_vendor_registers_books_tomorrow_and_checks_in_by_camera(
    svc: RunningAllocation, tmp_path: Path
) -> None:
    camera = qr_y4m(await stall_code(svc, STALL), tmp_path / "stall.y4m")
    async with chromium(camera=camera) as browser:
        await _register_book_and_check_in(svc, browser)


async def _register_book_and_check_in(svc: RunningAllocation, browser: Browser) -> None:
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    problems = watch(page)
    await page.goto(f"{svc.url}/app/")
    await expect(page.get_by_role("heading", name="登录")).to_be_visible()
    await no_accessibility_problems(page, "sign-in")

    # Register: the code is texted (the development outbox), then typed in.
    await page.get_by_role("button", name="还没有账号？注册").click()
    form = page.locator("#register")
    await form.get_by_label("姓名").fill("陈小梅")
    await form.get_by_label("手机号码").fill(PHONE_NUMBER)
    await form.get_by_label("密码（至少 8 位）").fill(PASSWORD)
    await form.get_by_label("居民身份证号码").fill(identity_number())
    await form.get_by_label("优先群体（需工作人员核实）").select_option("laid_off")
    await form.get_by_label("日用百货").check()
    await no_accessibility_problems(page, "register")
    await screenshot(page, "vendor-register")
    await page.get_by_role("button", name="获取验证码").click()
    await expect(page.get_by_label("短信验证码")).to_be_visible()
    await page.get_by_label("短信验证码").fill(sms_code(svc.sms_outbox, PHONE_NUMBER))
    await page.get_by_role("button", name="完成注册").click()
    await expect(page.get_by_role("status")).to_contain_text("注册成功")

    # Until staff verify the claims, nothing counts: the profile says so.
    await page.get_by_role("button", name="我的", exact=True).click()
    await expect(page.locator("#claims")).to_contain_text("待核实")
    async with httpx.AsyncClient(base_url=svc.url) as c:
        login = await c.post(
            "/v1/auth/token", data={"username": PHONE_NUMBER, "password": PASSWORD}
        )
        vendor_id = (
            await c.get(
                "/v1/vendors/me",
                headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            )
        ).json()["id"]
    await svc.verified(vendor_id)
    await page.get_by_role("button", name="找摊位").click()
    await page.get_by_role("button", name="我的", exact=True).click()
    await expect(page.locator("#claims")).to_contain_text("已核实")
    await expect(page.locator("#profile")).to_contain_text("日用百货")
    # The id a patrol officer asks for (the patrol page's vendor field) is on the profile.
    await expect(page.locator("#profile")).to_contain_text(vendor_id)

    # Find the market, pick tomorrow, book the stall.
    await page.get_by_role("button", name="找摊位").click()
    await page.get_by_label("区域").select_option("xiangzhou")
    await page.get_by_role("button", name="测试夜市").click()
    await page.get_by_label("日期").fill(TUESDAY.isoformat())
    await page.get_by_label("日期").dispatch_event("change")
    await page.get_by_role("button", name=f"预约摊位 {STALL}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"预约成功：{STALL}")
    await no_accessibility_problems(page, "market")
    await screenshot(page, "vendor-booked")

    # The next evening, at the stall: check in with the camera.
    set_now(svc.clock, local(TUESDAY, 17, 35))
    await page.get_by_role("button", name="我的预约").click()
    booking = page.locator(f"li:has-text('{STALL}')")
    await expect(booking).to_contain_text("已预约")
    await booking.get_by_role("button", name="扫码签到").click()
    await expect(page.locator("#check-in-what")).to_contain_text(STALL)
    await expect(page.get_by_role("status")).to_contain_text(
        f"签到成功：摊位 {STALL}", timeout=20_000
    )
    await expect(page.locator(f"li:has-text('{STALL}')")).to_contain_text("已签到")
    await no_accessibility_problems(page, "bookings")
    await screenshot(page, "vendor-checked-in")
    async with svc.client() as c:
        login = await c.post(
            "/v1/auth/token", data={"username": PHONE_NUMBER, "password": PASSWORD}
        )
        token = login.json()["access_token"]
        (mine,) = (await c.get("/v1/bookings", headers={"Authorization": f"Bearer {token}"})).json()
    assert mine["stall_id"] == STALL
    assert mine["date"] == TUESDAY.isoformat()
    assert mine["state"] == "checked_in"

    # The page in English.
    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_role("button", name="My bookings")).to_be_visible()
    await expect(page.locator(f"li:has-text('{STALL}')")).to_contain_text("Checked in")
    assert problems == []
    await context.close()
    set_now(svc.clock, local(MONDAY, 10))


async def test_the_page_and_its_files_are_served_for_a_phone(svc: RunningAllocation) -> None:
    async with svc.client() as c:
        page = await c.get("/app/")
        redirect = await c.get("/app", follow_redirects=False)
        decoder_url = next(
            part.split('"')[0] for part in page.text.split('src="')[1:] if "jsqr" in part
        )
        decoder = await c.get(decoder_url, headers={"Accept-Encoding": "gzip"})
        again = await c.get(decoder_url, headers={"If-None-Match": decoder.headers["etag"]})
        missing = await c.get("/app/static/vendor/nothing.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src" not in csp or "'unsafe-inline'" not in csp.split("script-src")[1]
    assert "camera=(self)" in page.headers["permissions-policy"]
    assert redirect.status_code in (307, 308)
    assert redirect.headers["location"].endswith("/app/")
    # The decoder comes from this service, compressed, cached for good under its version.
    assert decoder.status_code == 200
    assert decoder.headers["content-encoding"] == "gzip"
    assert "immutable" in decoder.headers["cache-control"]
    assert "jsQR" in decoder.text
    assert again.status_code == 304
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_the_vendor_sees_the_warning_a_patrol_gave_them(
    infra: Infra,
    service_settings: SettingsFactory,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
    tmp_path: Path,
) -> None:
    """Inspection on another origin: the page reads the vendor's warnings from its
    ``/v1/me/warnings`` (inspection's CORS names allocation's origin)."""
    allocation_port = procs.free_port()
    scene = await scene_settings(await service_settings(InspectionSettings), tmp_path)
    settings = scene.model_copy(update={"cors_origins": f"http://127.0.0.1:{allocation_port}"})
    inspection = await start_inspection(settings, serve, publisher, eventually)
    isolation = Isolation.fresh(infra)
    async with serve_seeded(
        isolation, port=allocation_port, inspection_url=str(inspection.base_url)
    ) as alloc:
        set_now(alloc.clock, SCENE_NOW)  # one clock for both: the vendor token is checked on it
        vendor = await alloc.register(
            name="林阿姨", phone="13944445555", password=PASSWORD, categories=["daily_goods"]
        )
        near_market = {"lat": 22.2712, "lon": 113.5771}  # a few dozen metres from XZ-07
        report = await inspection.post(
            "/v1/street-reports",
            json={"location": near_market, "category": "daily_goods", "vendor_id": vendor.id},
            headers=token(Role.PATROL, "p-xz-1", "xiangzhou"),
        )
        assert report.status_code == 201, report.text
        async with chromium() as browser:
            context = await browser.new_context(**PHONE)
            page = await context.new_page()
            problems = watch(page)
            await page.goto(f"{alloc.url}/app/")
            sign_in = page.locator("#sign-in")
            await sign_in.get_by_label("手机号码").fill("13944445555")
            await sign_in.get_by_label("密码").fill(PASSWORD)
            await sign_in.get_by_role("button", name="登录", exact=True).click()
            await page.get_by_role("button", name="我的", exact=True).click()
            warnings = page.locator("#warnings")
            await expect(warnings).to_contain_text("警告")
            await expect(warnings).to_contain_text("流动摆卖")
            await no_accessibility_problems(page, "profile")
            await screenshot(page, "vendor-warnings")
            assert problems == []
            await context.close()
