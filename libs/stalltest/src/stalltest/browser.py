"""Real-browser tests of the pages: Debian's chromium driven by Playwright (its own browser
download does not work here), a phone-sized context, a fake camera showing a stall's QR code,
the page's console and failed requests watched, an axe-core accessibility check and
screenshots under ``test-artifacts/``."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import segno
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

REPO_ROOT = Path(__file__).resolve().parents[4]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"

#: A mid-sized phone held upright, in Chinese.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}

#: The fake camera's picture: a 4:3 frame, the code a little over half its height.
FRAME_WIDTH, FRAME_HEIGHT = 640, 480


def qr_y4m(text: str, path: Path, *, frames: int = 5) -> Path:
    """A Y4M video (what Chromium's fake camera plays, looping) of ``text`` as a QR code, black
    on white in the middle of a grey frame."""
    matrix = [list(row) for row in segno.make(text, error="m").matrix]
    quiet = 4
    modules = len(matrix) + 2 * quiet
    scale = (FRAME_HEIGHT * 3 // 4) // modules
    side = modules * scale
    left, top = (FRAME_WIDTH - side) // 2, (FRAME_HEIGHT - side) // 2
    luma = bytearray([128]) * (FRAME_WIDTH * FRAME_HEIGHT)
    for y in range(side):
        module_row = y // scale - quiet
        row_start = (top + y) * FRAME_WIDTH + left
        for x in range(side):
            module_col = x // scale - quiet
            dark = (
                0 <= module_row < len(matrix)
                and 0 <= module_col < len(matrix)
                and matrix[module_row][module_col]
            )
            luma[row_start + x] = 16 if dark else 235
    chroma = bytes([128]) * ((FRAME_WIDTH // 2) * (FRAME_HEIGHT // 2))
    header = f"YUV4MPEG2 W{FRAME_WIDTH} H{FRAME_HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
    with path.open("wb") as out:
        out.write(header)
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(luma)
            out.write(chroma)
            out.write(chroma)
    return path


@asynccontextmanager
async def chromium(camera: Path | None = None) -> AsyncIterator[Browser]:
    """Debian's chromium (``make deps`` installs it), headless; with ``camera``, a fake camera
    that plays that Y4M file and is allowed without asking."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make deps`")
    args = ["--no-sandbox", "--disable-gpu"]
    if camera is not None:
        args += [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            await browser.close()


def watch(page: Page, *, offline_ok: bool = False) -> list[str]:
    """Every console error, uncaught exception and failed request of the page, as text.

    ``offline_ok``: requests that failed because the test took the network away
    (``net::ERR_INTERNET_DISCONNECTED``) and what the browser logs about them are expected.
    """
    problems: list[str] = []
    offline = ("ERR_INTERNET_DISCONNECTED", "Failed to fetch")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not (offline_ok and any(o in message.text for o in offline)):
            problems.append(f"console: {message.text}")

    def on_failed(request: Request) -> None:
        failure = request.failure or ""
        if failure == "net::ERR_ABORTED":  # a stream or fetch cut off by leaving the page
            return
        if offline_ok and "ERR_INTERNET_DISCONNECTED" in failure:
            return
        problems.append(f"failed: {request.method} {request.url} {failure}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", on_failed)
    return problems


async def axe_violations(
    page: Page, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[str]:
    """The axe-core (vendored from npm) violations of the page as it is now, of ``impacts``."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = await page.evaluate(
        "async () => await window.axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in result["violations"]
        if v.get("impact") in impacts
    ]


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot saved as ``test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
