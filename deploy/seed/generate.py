"""Generate the seed catalogue: Zhuhai's 35 temporary convenience markets and 1,489 stalls.

Deterministic: the markets are a fixed table and stalls are spread over each market's zones by a
fixed weighting, so every run writes the same file. Run ``uv run python deploy/seed/generate.py``
(optionally with an output path) after editing the table.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from contracts.catalogue import (
    Catalogue,
    Category,
    District,
    Location,
    Market,
    MarketWindow,
    Stall,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "catalogue.json"
TOTAL_MARKETS = 35
TOTAL_STALLS = 1489

#: Letter of each category's zone; it starts the zone part of a stall id (``XZ-03-A017``).
ZONE_LETTER: dict[Category, str] = {
    Category.COOKED_FOOD: "A",
    Category.FRESH_PRODUCE: "B",
    Category.DAILY_GOODS: "C",
    Category.SERVICES: "D",
    Category.CRAFTS_CULTURE: "E",
}

#: Relative share of a market's stalls each zone gets (normalised over the zones it has).
ZONE_WEIGHT: dict[Category, int] = {
    Category.COOKED_FOOD: 35,
    Category.FRESH_PRODUCE: 30,
    Category.DAILY_GOODS: 20,
    Category.SERVICES: 7,
    Category.CRAFTS_CULTURE: 8,
}

EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]
EVENING = MarketWindow(
    id="evening",
    name_zh="夜市",
    name_en="Evening market",
    days=EVERY_DAY,
    start=time(17, 30),
    end=time(22, 30),
)
MORNING = MarketWindow(
    id="morning",
    name_zh="早市",
    name_en="Morning market",
    days=EVERY_DAY,
    start=time(6, 0),
    end=time(10, 0),
)
WEEKEND = MarketWindow(
    id="weekend",
    name_zh="周末集市",
    name_en="Weekend market",
    days=[6, 7],
    start=time(9, 0),
    end=time(21, 0),
)

SCHEDULES: dict[str, list[MarketWindow]] = {
    "evening": [EVENING],
    "morning": [MORNING],
    "weekend": [WEEKEND],
    "both": [MORNING, EVENING],
}

F = Category.COOKED_FOOD
P = Category.FRESH_PRODUCE
G = Category.DAILY_GOODS
S = Category.SERVICES
C = Category.CRAFTS_CULTURE


@dataclass(frozen=True)
class MarketSpec:
    """One row of the market table."""

    id: str
    district: District
    name_zh: str
    name_en: str
    address_zh: str
    lat: float
    lon: float
    zones: tuple[Category, ...]
    schedule: str
    stalls: int


XZ = District.XIANGZHOU
DM = District.DOUMEN
JW = District.JINWAN
GX = District.GAOXIN
HQ = District.HENGQIN
WS = District.WANSHAN
GL = District.GAOLANGANG

# fmt: off
MARKETS: tuple[MarketSpec, ...] = (
    # 香洲区 Xiangzhou
    MarketSpec("XZ-01", XZ, "拱北夜市便民点", "Gongbei Night Market",
               "香洲区拱北迎宾南路与粤华路交界", 22.2178, 113.5462, (F, G, S, C), "evening", 80),
    MarketSpec("XZ-02", XZ, "吉大景山路便民市场", "Jida Jingshan Road Market",
               "香洲区吉大景山路九洲城旁", 22.2461, 113.5718, (F, G, S), "evening", 62),
    MarketSpec("XZ-03", XZ, "前山翠微东路便民市场", "Qianshan Cuiwei East Road Market",
               "香洲区前山街道翠微东路", 22.2568, 113.5214, (F, P, G, S), "both", 72),
    MarketSpec("XZ-04", XZ, "香湾海虹路夜市", "Xiangwan Haihong Road Night Market",
               "香洲区香湾街道海虹路", 22.2836, 113.5632, (F, G, C), "evening", 44),
    MarketSpec("XZ-05", XZ, "南屏北二路便民市场", "Nanping Bei'er Road Market",
               "香洲区南屏镇南屏北二路", 22.2352, 113.5071, (F, P, G), "evening", 53),
    MarketSpec("XZ-06", XZ, "湾仔海鲜街早市", "Wanzai Seafood Street Morning Market",
               "香洲区湾仔街道湾仔海鲜街", 22.1991, 113.5301, (P, F, G), "morning", 38),
    MarketSpec("XZ-07", XZ, "夏湾夜市便民点", "Xiawan Night Market",
               "香洲区拱北街道夏湾路", 22.2249, 113.5362, (F, G, S), "evening", 64),
    MarketSpec("XZ-08", XZ, "翠微村便民市场", "Cuiwei Village Market",
               "香洲区前山街道翠微村翠微西路", 22.2637, 113.5163, (P, F, G, S), "both", 52),
    MarketSpec("XZ-09", XZ, "梅华西路夜市", "Meihua West Road Night Market",
               "香洲区梅华街道梅华西路", 22.2697, 113.5488, (F, G, S, C), "evening", 51),
    MarketSpec("XZ-10", XZ, "狮山紫荆路便民市场", "Shishan Zijing Road Market",
               "香洲区狮山街道紫荆路", 22.2589, 113.5547, (F, G, S), "evening", 34),
    MarketSpec("XZ-11", XZ, "凤山界涌便民市场", "Fengshan Jieyong Market",
               "香洲区凤山街道界涌村", 22.3102, 113.5468, (P, F, G), "morning", 26),
    MarketSpec("XZ-12", XZ, "翠香街道夜市", "Cuixiang Night Market",
               "香洲区翠香街道翠前北路", 22.2624, 113.5397, (F, G, C), "evening", 42),
    MarketSpec("XZ-13", XZ, "柠溪路便民市场", "Ningxi Road Market",
               "香洲区柠溪路华发新城旁", 22.2652, 113.5341, (F, G, S), "evening", 30),
    MarketSpec("XZ-14", XZ, "新香洲夜市", "Xinxiangzhou Night Market",
               "香洲区新香洲人民西路", 22.2896, 113.5431, (F, P, G, S), "evening", 58),
    # 斗门区 Doumen
    MarketSpec("DM-01", DM, "井岸新青夜市", "Jing'an Xinqing Night Market",
               "斗门区井岸镇新青路", 22.2118, 113.2967, (F, G, S, C), "evening", 68),
    MarketSpec("DM-02", DM, "白藤湖便民市场", "Baiteng Lake Market",
               "斗门区白藤街道白藤湖路", 22.2069, 113.3508, (P, F, G), "both", 40),
    MarketSpec("DM-03", DM, "斗门旧街周末集市", "Doumen Old Street Weekend Market",
               "斗门区斗门镇斗门旧街", 22.2246, 113.1952, (C, F, G), "weekend", 36),
    MarketSpec("DM-04", DM, "白蕉镇便民市场", "Baijiao Town Market",
               "斗门区白蕉镇白蕉路", 22.1712, 113.3164, (F, P, G), "evening", 28),
    MarketSpec("DM-05", DM, "乾务镇早市", "Qianwu Town Morning Market",
               "斗门区乾务镇乾务墟", 22.1433, 113.2486, (P, F, G), "morning", 24),
    MarketSpec("DM-06", DM, "莲洲镇便民市场", "Lianzhou Town Market",
               "斗门区莲洲镇上横", 22.3347, 113.2241, (P, F, G), "evening", 20),
    # 金湾区 Jinwan
    MarketSpec("JW-01", JW, "三灶海澄夜市", "Sanzao Haicheng Night Market",
               "金湾区三灶镇海澄路", 22.0429, 113.3872, (F, G, S, C), "evening", 54),
    MarketSpec("JW-02", JW, "红旗镇便民市场", "Hongqi Town Market",
               "金湾区红旗镇红旗路", 22.1387, 113.4006, (F, P, G, S), "both", 50),
    MarketSpec("JW-03", JW, "平沙镇夜市", "Pingsha Town Night Market",
               "金湾区平沙镇平沙大道", 22.0786, 113.2189, (F, G, S), "evening", 32),
    MarketSpec("JW-04", JW, "金湾航空新城便民市场", "Jinwan Aviation New Town Market",
               "金湾区金湾路航空新城", 22.1192, 113.3688, (F, G, S, C), "evening", 49),
    MarketSpec("JW-05", JW, "小林社区早市", "Xiaolin Community Morning Market",
               "金湾区红旗镇小林社区", 22.1738, 113.3981, (P, F, G), "morning", 22),
    # 高新区 Gaoxin
    MarketSpec("GX-01", GX, "唐家湾夜市", "Tangjiawan Night Market",
               "高新区唐家湾镇唐淇路", 22.3624, 113.5866, (F, G, S, C), "evening", 60),
    MarketSpec("GX-02", GX, "唐家古镇周末集市", "Tangjia Old Town Weekend Market",
               "高新区唐家湾镇唐家古镇大同路", 22.3588, 113.5913, (C, F, G), "weekend", 34),
    MarketSpec("GX-03", GX, "金鼎便民市场", "Jinding Market",
               "高新区唐家湾镇金鼎片区", 22.3746, 113.5312, (F, P, G, S), "evening", 52),
    MarketSpec("GX-04", GX, "后环社区早市", "Houhuan Community Morning Market",
               "高新区唐家湾镇后环社区", 22.3497, 113.5928, (P, F, G), "morning", 18),
    # 横琴粤澳深度合作区 Hengqin
    MarketSpec("HQ-01", HQ, "横琴口岸便民市场", "Hengqin Port Market",
               "横琴粤澳深度合作区环岛东路横琴口岸旁", 22.1364, 113.5452,
               (F, G, S, C), "evening", 40),
    MarketSpec("HQ-02", HQ, "横琴新家园夜市", "Hengqin New Home Night Market",
               "横琴粤澳深度合作区港澳大道横琴新家园", 22.1268, 113.5239, (F, G, S), "evening", 42),
    MarketSpec("HQ-03", HQ, "天沐河周末集市", "Tianmu River Weekend Market",
               "横琴粤澳深度合作区天沐河滨水公园", 22.1203, 113.5347, (C, F, G), "weekend", 30),
    # 万山海洋开发试验区 Wanshan
    MarketSpec("WS-01", WS, "桂山岛周末集市", "Guishan Island Weekend Market",
               "万山区桂山镇桂山岛码头", 22.1368, 113.8251, (F, P, C), "weekend", 24),
    MarketSpec("WS-02", WS, "东澳岛便民市场", "Dong'ao Island Market",
               "万山区担杆镇东澳岛斧担湾", 22.0236, 113.6978, (F, P, G), "evening", 19),
    # 高栏港经济区 Gaolangang
    MarketSpec("GL-01", GL, "南水镇便民市场", "Nanshui Town Market",
               "高栏港经济区南水镇南水大道", 22.0318, 113.2402, (F, P, G, S), "evening", 41),
)
# fmt: on


def zone_counts(total: int, zones: tuple[Category, ...]) -> dict[Category, int]:
    """Split ``total`` stalls over ``zones`` by weight (largest remainder), at least one each."""
    if total < len(zones):
        raise ValueError(f"{total} stalls cannot fill {len(zones)} zones")
    counts = dict.fromkeys(zones, 1)
    rest = total - len(zones)
    weight = sum(ZONE_WEIGHT[z] for z in zones)
    shares = {z: rest * ZONE_WEIGHT[z] / weight for z in zones}
    for z in zones:
        counts[z] += int(shares[z])
    left = total - sum(counts.values())
    by_remainder = sorted(zones, key=lambda z: (-(shares[z] - int(shares[z])), zones.index(z)))
    for z in by_remainder[:left]:
        counts[z] += 1
    return counts


def build_market(spec: MarketSpec) -> Market:
    """The catalogue market for one table row."""
    return Market(
        id=spec.id,
        district=spec.district,
        name_zh=spec.name_zh,
        name_en=spec.name_en,
        address_zh=spec.address_zh,
        location=Location(lat=spec.lat, lon=spec.lon),
        zones=list(spec.zones),
        windows=SCHEDULES[spec.schedule],
    )


def build_stalls(spec: MarketSpec) -> list[Stall]:
    """The stalls of one market, numbered from 001 within each zone."""
    return [
        Stall(id=f"{spec.id}-{ZONE_LETTER[zone]}{n:03d}", market_id=spec.id, category=zone)
        for zone, count in zone_counts(spec.stalls, spec.zones).items()
        for n in range(1, count + 1)
    ]


def build_catalogue() -> Catalogue:
    """The whole seed catalogue, checked against the published totals."""
    catalogue = Catalogue(
        markets=[build_market(spec) for spec in MARKETS],
        stalls=[stall for spec in MARKETS for stall in build_stalls(spec)],
    )
    if len(catalogue.markets) != TOTAL_MARKETS or len(catalogue.stalls) != TOTAL_STALLS:
        raise ValueError(
            f"seed has {len(catalogue.markets)} markets and {len(catalogue.stalls)} stalls, "
            f"expected {TOTAL_MARKETS} and {TOTAL_STALLS}"
        )
    return catalogue


def render(catalogue: Catalogue) -> str:
    """The catalogue as JSON text: markets indented, one stall per line."""

    def dumps(value: object, indent: int | None = None) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    data = catalogue.model_dump(mode="json")
    markets = dumps(data["markets"], indent=2).replace("\n", "\n  ")
    stalls = ",\n    ".join(dumps(stall) for stall in data["stalls"])
    return f'{{\n  "markets": {markets},\n  "stalls": [\n    {stalls}\n  ]\n}}\n'


def main(argv: list[str] | None = None) -> None:
    """Write the seed catalogue to ``argv[1]`` or ``deploy/seed/catalogue.json``."""
    args = sys.argv if argv is None else argv
    path = Path(args[1]) if len(args) > 1 else DEFAULT_OUTPUT
    path.write_text(render(build_catalogue()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
