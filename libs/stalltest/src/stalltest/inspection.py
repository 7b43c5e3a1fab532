"""Test support for inspection: a small scene (two markets in two districts, bookings, signed
stall codes) and the service started on a real broker and Redis with the scene projected.

The service clock is Friday 2026-11-20 18:00 local: XZ-07's evening window (17:30-20:00) is
open, its late window (20:30-22:00) is still to come.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import httpx
from faststream.kafka import KafkaBroker

from allocation.config import DEV_STALL_CODE_SEED_B64
from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Event
from contracts.events import BookingCreated, MarketChanged, StallChanged
from inspection.app import create_app
from inspection.config import InspectionSettings
from stallkit import stall_codes
from stallkit.auth import Role
from stallkit.clock import local_datetime
from stallkit.messaging import publish_event
from stalltest.tokens import bearer, dev_token

Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
Eventually = Callable[..., Awaitable[Any]]

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # Friday 18:00 local
FRIDAY = date(2026, 11, 20)
MARKET, OTHER = "XZ-07", "DM-02"  # Xiangzhou, Doumen
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=clock_time(17, 30), end=clock_time(20, 0),
)  # fmt: skip
LATE = MarketWindow(
    id="late", name_zh="晚市", name_en="Late", days=[1, 2, 3, 4, 5, 6, 7],
    start=clock_time(20, 30), end=clock_time(22, 0),
)  # fmt: skip
_SIGNER = stall_codes.private_key_from_seed(DEV_STALL_CODE_SEED_B64)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time as an aware UTC datetime."""
    return local_datetime(day, hour * 60 + minute).astimezone(UTC)


def code(stall_id: str, version: int = 1) -> str:
    """The printed code of a stall, signed with allocation's development key."""
    return stall_codes.sign(_SIGNER, stall_id, version)


def token(role: Role, sub: str | None = None, district: str | None = None) -> dict[str, str]:
    """Authorization header of a development token valid at the scene's time."""
    return bearer(dev_token(role, sub or f"{role.value}-1", district=district, now=NOW))


PATROL = token(Role.PATROL, "patrol-xz-1", "xiangzhou")
OFFICE = token(Role.DISTRICT, "district-xz-1", "xiangzhou")
CHECKER = token(Role.DISTRICT, "district-xz-2", "xiangzhou")
OTHER_PATROL = token(Role.PATROL, "patrol-dm-1", "doumen")
OTHER_OFFICE = token(Role.DISTRICT, "district-dm-1", "doumen")
ADMIN = token(Role.ADMIN, "admin-1")


def market(market_id: str, district: District, lat: float, lon: float) -> Market:
    """A market of the scene with both windows and two zones."""
    return Market(
        id=market_id,
        district=district,
        name_zh=f"{market_id} 便民市场",
        name_en=f"{market_id} Market",
        location=Location(lat=lat, lon=lon),
        zones=[Category.COOKED_FOOD, Category.DAILY_GOODS],
        windows=[EVENING, LATE],
    )


def booking(
    stall_id: str, vendor_id: str, window: MarketWindow = EVENING, day: date = FRIDAY
) -> BookingCreated:
    """A booking of the scene's market."""
    return BookingCreated(
        market_id=stall_id[:5],
        booking_id=f"bk_{stall_id}_{window.id}_{day.isoformat()}",
        vendor_id=vendor_id,
        stall_id=stall_id,
        date=day,
        window_id=window.id,
        category=Category.COOKED_FOOD,
        starts_at=local(day, window.start.hour, window.start.minute),
        ends_at=local(day, window.end.hour, window.end.minute),
        priority=False,
    )


def scene_events() -> list[Event]:
    """Two markets, six stalls each (A001-A003 cooked food, A004-A006 daily goods), and
    XZ-07's A001 booked by vd_alice and A002 by vd_bob, DM-02's A001 by vd_zoe, for Friday
    evening."""
    events: list[Event] = []
    for market_id, district, lat, lon in (
        (MARKET, District.XIANGZHOU, 22.2707, 113.5767),
        (OTHER, District.DOUMEN, 22.2090, 113.2970),
    ):
        events.append(
            MarketChanged(market_id=market_id, market=market(market_id, district, lat, lon))
        )
        for n in range(1, 7):
            category = Category.COOKED_FOOD if n <= 3 else Category.DAILY_GOODS
            stall = Stall(id=f"{market_id}-A{n:03d}", market_id=market_id, category=category)
            events.append(StallChanged(market_id=market_id, stall=stall))
    events += [
        booking(f"{MARKET}-A001", "vd_alice"),
        booking(f"{MARKET}-A002", "vd_bob"),
        booking(f"{OTHER}-A001", "vd_zoe"),
    ]
    return events


async def scene_settings(settings: InspectionSettings, evidence_dir: Any) -> InspectionSettings:
    """The test's settings on the scene's clock."""
    return settings.model_copy(
        update={
            "clock_offset_seconds": NOW.timestamp() - time.time(),
            "evidence_dir": evidence_dir,
        }
    )


async def publish_all(
    publisher: KafkaBroker, settings: InspectionSettings, events: Sequence[Event]
) -> None:
    """Publish events as their producers would (keyed by market)."""
    for event in events:
        await publish_event(publisher, settings, event, time=NOW - timedelta(hours=1))


async def start_inspection(
    settings: InspectionSettings,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
    events: Sequence[Event] | None = None,
) -> httpx.AsyncClient:
    """The service, serving, with the scene (or ``events``) projected."""
    client = await serve(create_app(settings, configure_logs=False))
    await publish_all(publisher, settings, scene_events() if events is None else events)

    async def projected() -> bool:
        # The last booking of each market is in, and so is its market (another topic).
        for stall_id, district in ((f"{MARKET}-A002", "xiangzhou"), (f"{OTHER}-A001", "doumen")):
            r = await client.get(
                f"/v1/stalls/{stall_id}/expected",
                params={"window_id": "evening", "date": FRIDAY.isoformat()},
                headers=ADMIN,
            )
            if r.status_code != 200 or r.json()["district"] != district:
                return False
        return True

    await eventually(projected)
    return client


def tiny_png(width: int = 2, height: int = 1) -> bytes:
    """A real greyscale PNG of ``width`` × ``height`` pixels (a stand-in for a phone photo)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(i % 256 for i in range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
