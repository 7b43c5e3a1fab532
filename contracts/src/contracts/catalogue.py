"""Catalogue value types shared by events and the seed file: markets, windows, stalls."""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from contracts.text import PlainText, PlainTextOrEmpty

MARKET_ID_PATTERN = r"^[A-Z]{2}-\d{2}$"
STALL_ID_PATTERN = r"^[A-Z]{2}-\d{2}-[A-Z]\d{3}$"
WINDOW_ID_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
#: A local time of day, ``HH:MM`` or ``HH:MM:SS`` (no offset: windows are Asia/Shanghai time).
LOCAL_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"

MarketId = Annotated[
    str, Field(pattern=MARKET_ID_PATTERN, description="Market id.", examples=["XZ-03"])
]
StallId = Annotated[
    str, Field(pattern=STALL_ID_PATTERN, description="Stall id.", examples=["XZ-03-A017"])
]
WindowId = Annotated[
    str,
    Field(
        pattern=WINDOW_ID_PATTERN, description="Window id within a market.", examples=["evening"]
    ),
]


def _local_time(value: Any) -> Any:
    if isinstance(value, time):
        if value.tzinfo is not None or value.microsecond:
            raise ValueError("a local time of day has no offset and no fraction of a second")
        return value
    if not isinstance(value, str) or not re.fullmatch(LOCAL_TIME_PATTERN, value):
        raise ValueError("a local time of day is written HH:MM or HH:MM:SS")
    # Parsed here, so that strict validation (which takes no string for a time) accepts it too.
    return time.fromisoformat(value)


#: A local time of day: ``datetime.time`` in Python, ``HH:MM[:SS]`` in JSON (emitted ``HH:MM:SS``).
LocalTime = Annotated[
    time,
    BeforeValidator(_local_time),
    PlainSerializer(lambda t: t.strftime("%H:%M:%S"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": LOCAL_TIME_PATTERN}),
]


class District(StrEnum):
    """Zhuhai's districts and functional zones that run markets."""

    XIANGZHOU = "xiangzhou"
    DOUMEN = "doumen"
    JINWAN = "jinwan"
    HENGQIN = "hengqin"
    GAOXIN = "gaoxin"
    WANSHAN = "wanshan"
    GAOLANGANG = "gaolangang"


#: Each district's name in Chinese and in English, for people (reports, dashboards).
DISTRICT_NAMES: dict[District, tuple[str, str]] = {
    District.XIANGZHOU: ("香洲区", "Xiangzhou District"),
    District.DOUMEN: ("斗门区", "Doumen District"),
    District.JINWAN: ("金湾区", "Jinwan District"),
    District.HENGQIN: ("横琴粤澳深度合作区", "Hengqin Guangdong-Macao Cooperation Zone"),
    District.GAOXIN: ("高新区", "High-tech Zone"),
    District.WANSHAN: ("万山区", "Wanshan Zone"),
    District.GAOLANGANG: ("高栏港区", "Gaolan Port Zone"),
}


class Category(StrEnum):
    """Stall categories (分类别)."""

    COOKED_FOOD = "cooked_food"
    FRESH_PRODUCE = "fresh_produce"
    DAILY_GOODS = "daily_goods"
    SERVICES = "services"
    CRAFTS_CULTURE = "crafts_culture"


class Location(BaseModel):
    """WGS-84 coordinates."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lat: float = Field(ge=21.5, le=22.7, description="Latitude.", examples=[22.2707])
    lon: float = Field(ge=113.0, le=114.4, description="Longitude.", examples=[113.5767])


class MarketWindow(BaseModel):
    """One recurring opening window of a market in Asia/Shanghai time."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: WindowId
    name_zh: PlainText = Field(max_length=40, description="Chinese label.", examples=["夜市"])
    name_en: PlainText = Field(
        max_length=40, description="English label.", examples=["Evening market"]
    )
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        min_length=1,
        max_length=7,
        description="ISO weekdays the window runs on (1 = Monday).",
        examples=[[1, 2, 3, 4, 5, 6, 7]],
    )
    start: LocalTime = Field(description="Local start time.", examples=["17:30:00"])
    end: LocalTime = Field(description="Local end time, same day.", examples=["22:30:00"])

    @model_validator(mode="after")
    def _ordered(self) -> MarketWindow:
        if self.end <= self.start:
            raise ValueError("window end must be after its start on the same day")
        if len(set(self.days)) != len(self.days):
            raise ValueError("window days must not repeat")
        return self

    @property
    def start_minute(self) -> int:
        """Minutes after local midnight the window starts."""
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        """Minutes after local midnight the window ends."""
        return self.end.hour * 60 + self.end.minute


class Market(BaseModel):
    """A temporary convenience market (临时便民市场)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: MarketId
    district: District = Field(description="District that answers for the market.")
    name_zh: PlainText = Field(min_length=1, max_length=60, examples=["拱北夜市便民点"])
    name_en: PlainText = Field(min_length=1, max_length=80, examples=["Gongbei Night Market"])
    address_zh: PlainTextOrEmpty = Field(
        default="", max_length=120, examples=["香洲区拱北迎宾南路"]
    )
    location: Location
    zones: list[Category] = Field(min_length=1, description="Category zones the market has.")
    windows: list[MarketWindow] = Field(min_length=1, description="Weekly schedule.")

    @field_validator("windows")
    @classmethod
    def _unique_windows(cls, windows: list[MarketWindow]) -> list[MarketWindow]:
        ids = [w.id for w in windows]
        if len(set(ids)) != len(ids):
            raise ValueError("window ids must be unique within a market")
        return windows

    def window(self, window_id: str) -> MarketWindow | None:
        """The window with this id, if the schedule has it."""
        return next((w for w in self.windows if w.id == window_id), None)


class Stall(BaseModel):
    """One stall (摊位) in a market."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: StallId
    market_id: MarketId
    category: Category
    active: StrictBool = Field(default=True, description="Inactive stalls cannot be booked.")

    @model_validator(mode="after")
    def _belongs(self) -> Stall:
        if not self.id.startswith(self.market_id + "-"):
            raise ValueError("stall id must start with its market id")
        return self


class Catalogue(BaseModel):
    """A whole catalogue: the seed file's shape."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    markets: list[Market]
    stalls: list[Stall]

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        markets = {m.id: m for m in self.markets}
        if len(markets) != len(self.markets):
            raise ValueError("market ids must be unique")
        seen: set[str] = set()
        for stall in self.stalls:
            if stall.id in seen:
                raise ValueError(f"duplicate stall id {stall.id}")
            seen.add(stall.id)
            market = markets.get(stall.market_id)
            if market is None:
                raise ValueError(f"stall {stall.id} names unknown market {stall.market_id}")
            if stall.category not in market.zones:
                raise ValueError(f"stall {stall.id} category has no zone in its market")
        return self


def market_of_stall(stall_id: str) -> str:
    """Market id encoded in a stall id (``XZ-03-A017`` → ``XZ-03``)."""
    if not re.match(STALL_ID_PATTERN, stall_id):
        raise ValueError(f"not a stall id: {stall_id!r}")
    return stall_id[:5]
