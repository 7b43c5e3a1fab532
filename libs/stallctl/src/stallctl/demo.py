"""``stallctl demo``: the plan of a simulated market day (pure: no I/O, no clock).

A plan says who books which stall of which window and when, what becomes of each booking
(checked in and present, gone early, passed on to someone else, still vending after the close,
a no-show, a cancellation), which stalls the patrols scan and what they find there, and which
bookings are expected to be refused by a rule. It is drawn from a seeded ``random.Random``, so
one seed gives one day. :mod:`stallctl.demo_driver` plays it through the services' public HTTP
APIs on their sped-up clock; what happens to the cases the scans open is decided as they come
(:func:`case_steps`). The report side (tally, table) is :mod:`stallctl.demo_report`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from contracts.catalogue import Catalogue, Category, District
from contracts.events import PriorityGroup
from stallkit.clock import local_datetime

DEFAULT_SPEED = 200.0
DEFAULT_VENDORS = 2000
#: Real seconds the system needs to start, in service time at the demo's speed (the clock
#: starts when the system does, so the day starts this long before the first booking).
STARTUP_REAL_SECONDS = 30.0
#: The patrols and offices work this long after the last window closes.
AFTER_HOURS = timedelta(hours=3)
LATEST_END_MINUTE = 23 * 60 + 55
#: Observed violations a patrol ticks at a stall that is otherwise in order.
OBSERVED = ("litter", "noise", "out_of_line_box", "obstruction", "banners", "cooking_fumes")
SURNAMES = "陈李王张刘黄林吴周郑梁何罗谢许邓冯曾彭苏卢蔡潘杨赖"
GIVEN = ("小梅", "建国", "秀英", "志强", "丽华", "伟", "芳", "海燕", "家豪", "嘉欣", "俊杰", "婉婷")


def next_saturday(today: date) -> date:
    """The first Saturday after ``today``: every market, the weekend ones too, opens then."""
    return today + timedelta(days=(5 - today.weekday()) % 7 or 7)


def select_markets(catalogue: Catalogue, wanted: Sequence[str]) -> Catalogue:
    """The catalogue reduced to ``wanted`` market ids and districts (all when empty)."""
    if not wanted:
        return catalogue
    names = {w.strip() for w in wanted if w.strip()}
    districts = {d.value for d in District}
    markets = [m for m in catalogue.markets if m.id in names or m.district.value in names]
    unknown = names - {m.id for m in markets} - districts
    if unknown or not markets:
        raise ValueError(f"no such market or district: {', '.join(sorted(unknown or names))}")
    ids = {m.id for m in markets}
    return Catalogue(markets=markets, stalls=[s for s in catalogue.stalls if s.market_id in ids])


@dataclass(frozen=True)
class Slot:
    """One market window on the demo's day."""

    market_id: str
    district: str
    window_id: str
    starts_at: datetime
    ends_at: datetime

    @property
    def key(self) -> str:
        """``XZ-03/morning``."""
        return f"{self.market_id}/{self.window_id}"

    def overlaps(self, other: Slot) -> bool:
        """Whether the two windows' times overlap (one vendor cannot hold both)."""
        return self.starts_at < other.ends_at and other.starts_at < self.ends_at


def day_slots(catalogue: Catalogue, day: date) -> list[Slot]:
    """The windows of every market on ``day``, earliest first."""
    slots = [
        Slot(
            market.id,
            market.district.value,
            window.id,
            local_datetime(day, window.start_minute),
            local_datetime(day, window.end_minute),
        )
        for market in catalogue.markets
        for window in market.windows
        if day.isoweekday() in window.days
    ]
    return sorted(slots, key=lambda s: (s.starts_at, s.market_id))


@dataclass(frozen=True)
class DemoVendor:
    """A synthetic vendor, created with its eligibility already verified."""

    id: str
    name: str
    phone: str
    priority_group: PriorityGroup
    categories: frozenset[Category]
    #: Until when the health certificate is valid (None: none); expired for a few.
    health_until: date | None
    #: Markets the vendor would like to sell at, best first.
    markets: tuple[str, ...]

    def may_book(self, category: Category, day: date) -> bool:
        """Whether the verified permits allow ``category`` on ``day``."""
        if category not in self.categories:
            return False
        if category is Category.COOKED_FOOD:
            return self.health_until is not None and self.health_until >= day
        return True


def make_vendors(
    catalogue: Catalogue, count: int, day: date, rng: random.Random
) -> list[DemoVendor]:
    """``count`` vendors: about a third in priority groups, categories as the stalls are."""
    stalls_by_market: dict[str, int] = {}
    categories: list[Category] = []
    for stall in catalogue.stalls:
        stalls_by_market[stall.market_id] = stalls_by_market.get(stall.market_id, 0) + 1
        categories.append(stall.category)
    market_ids = list(stalls_by_market)
    district_of = {m.id: m.district.value for m in catalogue.markets}
    by_district: dict[str, list[str]] = {}
    for market_id in market_ids:
        by_district.setdefault(district_of[market_id], []).append(market_id)
    groups = [
        (PriorityGroup.LAID_OFF, 0.12),
        (PriorityGroup.LOW_INCOME, 0.12),
        (PriorityGroup.COLLEGE_STUDENT, 0.10),
        (PriorityGroup.NONE, 0.66),
    ]
    vendors = []
    for n in range(count):
        group = rng.choices([g for g, _ in groups], [w for _, w in groups])[0]
        main = rng.choice(categories)
        cats = {main}
        if rng.random() < 0.3:
            cats.add(rng.choice(categories))
        health: date | None = None
        if Category.COOKED_FOOD in cats:
            health = day + timedelta(days=rng.randint(30, 700))
            if rng.random() < 0.03:
                health = day - timedelta(days=rng.randint(1, 60))  # expired: cooked food refused
        home = rng.choices(market_ids, [stalls_by_market[m] for m in market_ids])[0]
        near = [m for m in by_district[district_of[home]] if m != home]
        rng.shuffle(near)
        vendors.append(
            DemoVendor(
                id=f"vd_demo{n:05d}",
                name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                phone=f"139{n:08d}",
                priority_group=group,
                categories=frozenset(cats),
                health_until=health,
                markets=(home, *near[:2]),
            )
        )
    return vendors


class Fate(StrEnum):
    """What becomes of a booking."""

    PRESENT = "present"  # checks in and vends through the window
    OVERTIME = "overtime"  # checks in, still vending after the close: a warning, then a case
    LEAVES_EARLY = "leaves_early"  # checks in, gone when the patrol comes (booked but vacant)
    PASSES_ON = "passes_on"  # checks in, then someone else vends there (wrong vendor: a case)
    NO_SHOW = "no_show"  # never checks in: a no-show at start + 30 min, the stall released
    CANCELS = "cancels"  # cancels in time (free)
    CANCELS_LATE = "cancels_late"  # cancels within 2 h of the start (counts as a no-show)


CHECKS_IN = frozenset({Fate.PRESENT, Fate.OVERTIME, Fate.LEAVES_EARLY, Fate.PASSES_ON})


@dataclass
class Intent:
    """A vendor booking a stall of a window, and what follows."""

    key: str
    vendor: DemoVendor
    slot: Slot
    stall_id: str
    category: Category
    book_at: datetime
    fate: Fate
    check_in_at: datetime | None = None
    cancel_at: datetime | None = None
    walk_in: bool = False
    featured: bool = False


class Expect(StrEnum):
    """What a planned scan should find (the service's answer is what counts)."""

    COMPLIANT = "compliant"
    VACANT = "booked_but_vacant"
    WRONG_VENDOR = "wrong_vendor"
    OVERTIME = "overtime"
    WITHOUT_BOOKING = "occupied_without_booking"
    FORGED = "forged_code"


@dataclass(frozen=True)
class PlannedScan:
    """A patrol scan of a stall."""

    key: str
    at: datetime
    stall_id: str
    district: str
    occupied: bool
    expect: Expect
    vendor_id: str | None = None
    identity_number: str | None = None
    violations: tuple[str, ...] = ()
    forged: bool = False
    intent: str | None = None


@dataclass(frozen=True)
class Probe:
    """A booking a rule should refuse, and the code it should answer with."""

    key: str
    vendor: DemoVendor
    slot: Slot
    stall_id: str
    at: datetime
    expect: str
    after: str | None = None  # the intent that must be booked first


@dataclass
class DayPlan:
    """The whole simulated day."""

    day: date
    starts_at: datetime
    ends_at: datetime
    slots: list[Slot]
    vendors: list[DemoVendor]
    intents: list[Intent] = field(default_factory=list)
    scans: list[PlannedScan] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    @property
    def featured(self) -> Intent | None:
        """The booking whose story the demo tells step by step."""
        return next((i for i in self.intents if i.featured), None)

    def districts(self) -> list[str]:
        """The districts with markets in the plan, in the catalogue's order."""
        return list(dict.fromkeys(s.district for s in self.slots))

    def phase_at(self, at: datetime) -> str:
        """What is going on at ``at``, for the progress line."""
        open_now = [s for s in self.slots if s.starts_at <= at < s.ends_at]
        if open_now:
            windows = sorted({s.window_id for s in open_now})
            return f"{len(open_now)} 市场开市 markets open ({', '.join(windows)})"
        if at < self.slots[0].starts_at:
            return "开市前预约 booking before the first window"
        if at >= max(s.ends_at for s in self.slots):
            return "收市后巡查与结案 after hours: patrols, cases"
        return "午间 between windows: bookings, case handling"


def day_bounds(slots: Sequence[Slot], speed: float) -> tuple[datetime, datetime]:
    """When the simulated day starts (the clock's start) and ends (the driver stops)."""
    first, last = slots[0].starts_at, max(s.ends_at for s in slots)
    lead = max(timedelta(hours=3), timedelta(seconds=speed * STARTUP_REAL_SECONDS))
    latest = first.replace(hour=LATEST_END_MINUTE // 60, minute=LATEST_END_MINUTE % 60)
    return first - lead, min(last + AFTER_HOURS, latest)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment in [start, end] (``start`` if the range is empty), to the second."""
    span = max(0.0, (end - start).total_seconds())
    return start + timedelta(seconds=int(rng.uniform(0, span)))


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def booking_time(slot: Slot, day_start: datetime, rng: random.Random) -> datetime:
    """When a vendor books a stall of ``slot``: during the morning, at least 45 min before."""
    latest = slot.starts_at - _minutes(45)
    earliest = max(day_start + timedelta(hours=1), slot.starts_at - timedelta(hours=10, minutes=30))
    if earliest > latest:
        earliest = latest - _minutes(30)
    return _between(rng, earliest, latest)


@dataclass(frozen=True)
class Mix:
    """How often each fate comes (the rest are present all through the window)."""

    cancels: float = 0.04
    cancels_late: float = 0.015
    no_show: float = 0.08
    passes_on: float = 0.02
    leaves_early: float = 0.03
    overtime: float = 0.04
    #: Vendors who want a second (morning + evening) window.
    second_window: float = 0.2
    walk_in: float = 0.4
    squatted: float = 0.35
    patrolled: float = 0.75
    observed_violation: float = 0.08

    def fate(self, rng: random.Random) -> Fate:
        """One booking's fate."""
        roll = rng.random()
        for fate, share in (
            (Fate.CANCELS, self.cancels),
            (Fate.CANCELS_LATE, self.cancels_late),
            (Fate.NO_SHOW, self.no_show),
            (Fate.PASSES_ON, self.passes_on),
            (Fate.LEAVES_EARLY, self.leaves_early),
            (Fate.OVERTIME, self.overtime),
        ):
            if roll < share:
                return fate
            roll -= share
        return Fate.PRESENT


class _Stalls:
    """Which stalls of which window are still free while the plan is drawn."""

    def __init__(self, catalogue: Catalogue, slots: Sequence[Slot], rng: random.Random):
        self.free: dict[tuple[str, Category], list[str]] = {}
        self.all: dict[tuple[str, Category], list[str]] = {}
        by_market: dict[str, list[tuple[str, Category]]] = {}
        for stall in catalogue.stalls:
            by_market.setdefault(stall.market_id, []).append((stall.id, stall.category))
        for slot in slots:
            for stall_id, category in by_market.get(slot.market_id, []):
                self.free.setdefault((slot.key, category), []).append(stall_id)
                self.all.setdefault((slot.key, category), []).append(stall_id)
        for stalls in self.free.values():
            rng.shuffle(stalls)

    def take(self, slot: Slot, categories: Iterable[Category]) -> tuple[str, Category] | None:
        """A free stall of ``slot`` in one of ``categories``, taken."""
        for category in categories:
            stalls = self.free.get((slot.key, category))
            if stalls:
                return stalls.pop(), category
        return None

    def peek(self, slot: Slot, category: Category) -> str | None:
        """A free stall of ``slot`` in ``category``, left free."""
        stalls = self.free.get((slot.key, category))
        return stalls[0] if stalls else None

    def any_of(self, slot: Slot, category: Category) -> str | None:
        """A stall of ``slot`` in ``category``, free or not."""
        stalls = self.all.get((slot.key, category))
        return stalls[0] if stalls else None


def plan_day(
    catalogue: Catalogue,
    day: date,
    vendors: list[DemoVendor],
    rng: random.Random,
    *,
    speed: float = DEFAULT_SPEED,
    mix: Mix | None = None,
) -> DayPlan:
    """The day: bookings (first come, first served, in a random order of vendors), their fates,
    walk-ins on released stalls, the patrols' scans and the bookings rules must refuse."""
    mix = mix or Mix()
    slots = day_slots(catalogue, day)
    if not slots:
        raise ValueError(f"no market of the selection opens on {day} ({day:%A})")
    starts_at, ends_at = day_bounds(slots, speed)
    plan = DayPlan(day, starts_at, ends_at, slots, vendors)
    stalls = _Stalls(catalogue, slots, rng)
    held: dict[str, list[Slot]] = {}
    order = list(vendors)
    rng.shuffle(order)
    for vendor in order:
        wants = 2 if rng.random() < mix.second_window else 1
        for _ in range(wants):
            _book_one(plan, vendor, stalls, held, rng, mix)
    _walk_ins(plan, stalls, held, rng, mix)
    plan.intents.sort(key=lambda i: i.book_at)
    _feature(plan)
    _scans(plan, rng, mix)
    _probes(plan, stalls, held, rng)
    plan.scans.sort(key=lambda s: s.at)
    return plan


def _book_one(
    plan: DayPlan,
    vendor: DemoVendor,
    stalls: _Stalls,
    held: dict[str, list[Slot]],
    rng: random.Random,
    mix: Mix,
) -> None:
    mine = held.setdefault(vendor.id, [])
    permitted = [c for c in sorted(vendor.categories) if vendor.may_book(c, plan.day)]
    for market_id in vendor.markets:
        options = [s for s in plan.slots if s.market_id == market_id]
        rng.shuffle(options)
        for slot in options:
            if any(slot.overlaps(other) for other in mine):
                continue
            taken = stalls.take(slot, permitted)
            if taken is None:
                continue
            mine.append(slot)
            intent = Intent(
                key=f"demo-{len(plan.intents):05d}",
                vendor=vendor,
                slot=slot,
                stall_id=taken[0],
                category=taken[1],
                book_at=booking_time(slot, plan.starts_at, rng),
                fate=mix.fate(rng),
            )
            _timings(intent, rng)
            plan.intents.append(intent)
            return


def _timings(intent: Intent, rng: random.Random) -> None:
    """When the vendor checks in or cancels, as the fate says (a fate that cannot be, changes)."""
    start = intent.slot.starts_at
    if intent.fate is Fate.CANCELS:
        latest = start - timedelta(hours=2, minutes=5)
        if latest < intent.book_at + _minutes(15):
            intent.fate = Fate.CANCELS_LATE  # booked too close to the start to cancel for free
        else:
            intent.cancel_at = _between(rng, intent.book_at + _minutes(15), latest)
    if intent.fate is Fate.CANCELS_LATE:
        earliest = max(start - timedelta(hours=2) + _minutes(5), intent.book_at + _minutes(10))
        intent.cancel_at = _between(rng, earliest, start - _minutes(10))
    if intent.fate in CHECKS_IN:
        earliest = max(start - _minutes(29), intent.book_at + _minutes(2))
        intent.check_in_at = _between(rng, earliest, start + _minutes(20))


def _walk_ins(
    plan: DayPlan, stalls: _Stalls, held: dict[str, list[Slot]], rng: random.Random, mix: Mix
) -> None:
    """Some stalls a no-show released are booked on the spot by a vendor without a stall."""
    for intent in [i for i in plan.intents if i.fate is Fate.NO_SHOW]:
        if rng.random() >= mix.walk_in:
            continue
        slot = intent.slot
        candidates = [
            v
            for v in plan.vendors
            if v.may_book(intent.category, plan.day)
            and not any(slot.overlaps(s) for s in held.get(v.id, []))
        ]
        if not candidates:
            continue
        vendor = rng.choice(candidates)
        held.setdefault(vendor.id, []).append(slot)
        book_at = _between(rng, slot.starts_at + _minutes(40), slot.starts_at + _minutes(55))
        plan.intents.append(
            Intent(
                key=f"demo-{len(plan.intents):05d}",
                vendor=vendor,
                slot=slot,
                stall_id=intent.stall_id,
                category=intent.category,
                book_at=book_at,
                fate=Fate.PRESENT,
                check_in_at=book_at + _minutes(rng.randint(3, 12)),
                walk_in=True,
            )
        )


def _feature(plan: DayPlan) -> None:
    """One vendor whose day the demo tells: present in the day's first window, then overtime."""
    first = plan.slots[0]
    counts: dict[str, int] = {}
    for intent in plan.intents:
        counts[intent.vendor.id] = counts.get(intent.vendor.id, 0) + 1
    for intent in plan.intents:
        if (
            intent.slot == first
            and not intent.walk_in
            and intent.fate in CHECKS_IN
            and counts[intent.vendor.id] == 1
        ):
            intent.fate = Fate.OVERTIME
            intent.featured = True
            return


def _scans(plan: DayPlan, rng: random.Random, mix: Mix) -> None:
    """The patrols' rounds: most booked stalls once in their window, the overtime ones after
    the close (and again), released stalls, some stalls after the close, a forged code."""
    scans = plan.scans
    squatters: dict[str, str] = {}

    def add(
        at: datetime,
        intent: Intent | None,
        stall_id: str,
        slot: Slot,
        *,
        occupied: bool,
        expect: Expect,
        vendor_id: str | None = None,
        identity_number: str | None = None,
        violations: tuple[str, ...] = (),
        forged: bool = False,
    ) -> None:
        scans.append(
            PlannedScan(
                f"scan-{len(scans):05d}", at, stall_id, slot.district, occupied, expect,
                vendor_id, identity_number, violations, forged, intent.key if intent else None,
            )
        )  # fmt: skip

    walked_in = {(i.slot.key, i.stall_id) for i in plan.intents if i.walk_in}
    others = [v.id for v in plan.vendors]
    for intent in plan.intents:
        slot, stall, vendor = intent.slot, intent.stall_id, intent.vendor.id
        start, end = slot.starts_at, slot.ends_at
        in_window = _between(rng, start + _minutes(45), end - _minutes(20))
        if intent.featured:
            add(start + _minutes(40), intent, stall, slot, occupied=True, vendor_id=vendor,
                expect=Expect.COMPLIANT)  # fmt: skip
            add(end + _minutes(10), intent, stall, slot, occupied=True, vendor_id=vendor,
                expect=Expect.OVERTIME)  # fmt: skip
            add(end + _minutes(35), intent, stall, slot, occupied=True, vendor_id=vendor,
                expect=Expect.OVERTIME)  # fmt: skip
            continue
        if intent.fate is Fate.PRESENT and rng.random() < mix.patrolled:
            at = max(in_window, (intent.check_in_at or start) + _minutes(15))
            seen: tuple[str, ...] = ()
            if rng.random() < mix.observed_violation:
                seen = (rng.choice(OBSERVED),)
                if seen == ("cooking_fumes",) and intent.category is not Category.COOKED_FOOD:
                    seen = ("litter",)
            add(at, intent, stall, slot, occupied=True, vendor_id=vendor, violations=seen,
                expect=Expect.COMPLIANT)  # fmt: skip
        elif intent.fate is Fate.OVERTIME:
            add(in_window - _minutes(10), intent, stall, slot, occupied=True, vendor_id=vendor,
                expect=Expect.COMPLIANT)  # fmt: skip
            add(_between(rng, end + _minutes(8), end + _minutes(18)), intent, stall, slot,
                occupied=True, vendor_id=vendor, expect=Expect.OVERTIME)  # fmt: skip
            if rng.random() < 0.7:  # still there on the next round: a repeat, so a case
                add(_between(rng, end + _minutes(30), end + _minutes(45)), intent, stall, slot,
                    occupied=True, vendor_id=vendor, expect=Expect.OVERTIME)  # fmt: skip
        elif intent.fate is Fate.LEAVES_EARLY:
            at = _between(rng, start + _minutes(90), end - _minutes(20))
            add(at, intent, stall, slot, occupied=False, expect=Expect.VACANT)
        elif intent.fate is Fate.PASSES_ON:
            at = _between(rng, start + _minutes(60), end - _minutes(20))
            if rng.random() < 0.5:
                other = rng.choice([o for o in others if o != vendor])
                add(at, intent, stall, slot, occupied=True, vendor_id=other,
                    expect=Expect.WRONG_VENDOR)  # fmt: skip
            else:
                add(at, intent, stall, slot, occupied=True, expect=Expect.WRONG_VENDOR,
                    identity_number=_identity(rng))  # fmt: skip
        elif intent.fate is Fate.NO_SHOW and (slot.key, stall) not in walked_in:
            at = _between(rng, start + _minutes(50), end - _minutes(20))
            if rng.random() < mix.squatted:
                # Squatters come back: one identity per district, so a second time is a case.
                person = squatters.get(slot.district) if rng.random() < 0.5 else None
                person = person or _identity(rng)
                squatters[slot.district] = person
                add(at, intent, stall, slot, occupied=True, identity_number=person,
                    expect=Expect.WITHOUT_BOOKING)  # fmt: skip
            elif rng.random() < 0.5:
                add(at, intent, stall, slot, occupied=False, expect=Expect.COMPLIANT)
    for slot in plan.slots:
        booked = [i for i in plan.intents if i.slot == slot and i.fate is not Fate.OVERTIME]
        for intent in rng.sample(booked, min(3, len(booked))):
            at = _between(rng, slot.ends_at + _minutes(5), slot.ends_at + _minutes(30))
            add(at, None, intent.stall_id, slot, occupied=False, expect=Expect.COMPLIANT)
    for district in plan.districts():
        slot = rng.choice([s for s in plan.slots if s.district == district])
        in_slot = [i for i in plan.intents if i.slot == slot]
        if in_slot:
            at = _between(rng, slot.starts_at + _minutes(60), slot.ends_at - _minutes(30))
            add(at, None, rng.choice(in_slot).stall_id, slot, occupied=False, forged=True,
                expect=Expect.FORGED)  # fmt: skip
    plan.scans = [s for s in scans if s.at < plan.ends_at]


def _identity(rng: random.Random) -> str:
    """A resident identity number of someone without an account (check digit computed)."""
    area = rng.choice(["440402", "440403", "440404", "440303"])
    born = date(1960, 1, 1) + timedelta(days=rng.randint(0, 16000))
    body = f"{area}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def _probes(
    plan: DayPlan, stalls: _Stalls, held: dict[str, list[Slot]], rng: random.Random
) -> None:
    """Bookings the rules must refuse: a stall already taken, two places at once, a category
    without a permit, cooked food without a valid health certificate."""
    booked = [i for i in plan.intents if not i.walk_in and i.fate is not Fate.CANCELS]
    idle = [v for v in plan.vendors if not held.get(v.id)]
    per_kind = max(1, len(booked) // 100)
    for intent in rng.sample(booked, min(per_kind, len(booked))):
        rivals = [v for v in idle if v.may_book(intent.category, plan.day)]
        if rivals:
            _probe(plan, rng.choice(rivals), intent.slot, intent.stall_id,
                   intent.book_at + _minutes(5), "stall_taken", intent.key)  # fmt: skip
    added = 0
    for intent in rng.sample(booked, len(booked)):
        if added >= per_kind:
            break
        vendor = intent.vendor
        for slot in plan.slots:
            category = next((c for c in vendor.categories if vendor.may_book(c, plan.day)), None)
            if slot == intent.slot or not slot.overlaps(intent.slot) or category is None:
                continue
            stall = stalls.peek(slot, category)
            if stall is not None:
                _probe(plan, vendor, slot, stall, intent.book_at + _minutes(3),
                       "overlapping_booking", intent.key)  # fmt: skip
                added += 1
                break
    for kind in ("category_not_permitted", "health_certificate_required"):
        added = 0
        for vendor in rng.sample(idle, len(idle)):
            if added >= per_kind:
                break
            if kind == "health_certificate_required":
                lacking = [Category.COOKED_FOOD] if vendor.health_until and (
                    vendor.health_until < plan.day and Category.COOKED_FOOD in vendor.categories
                ) else []  # fmt: skip
            else:
                lacking = [c for c in Category if c not in vendor.categories]
            for slot in rng.sample(plan.slots, len(plan.slots)):
                # Eligibility is checked before the stall: a booked stall is refused for it too.
                stall = next((s for c in lacking if (s := stalls.any_of(slot, c))), None)
                if stall is not None:
                    at = booking_time(slot, plan.starts_at, rng)
                    _probe(plan, vendor, slot, stall, at, kind, None)
                    added += 1
                    break


def _probe(
    plan: DayPlan,
    vendor: DemoVendor,
    slot: Slot,
    stall_id: str,
    at: datetime,
    expect: str,
    after: str | None,
) -> None:
    plan.probes.append(
        Probe(f"probe-{len(plan.probes):04d}", vendor, slot, stall_id, at, expect, after)
    )


# -- the office's handling of a case -------------------------------------------------------------


class Step(StrEnum):
    """What the district office does to a case (``evaluate``: the vendor or office scores it)."""

    FILE = "file"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    SEND_BACK = "send_back"
    VERIFY = "verify"
    CLOSE = "close"
    EVALUATE = "evaluate"


#: The officer who files, dispatches and handles; the one who verifies, sends back and closes
#: (whoever handled a case cannot verify it).
HANDLER, VERIFIER = "office-1", "office-2"


def case_steps(
    opened_at: datetime,
    deadline: datetime,
    day_ends_at: datetime,
    rng: random.Random,
    *,
    featured: bool = False,
) -> list[tuple[datetime, Step]]:
    """When the office takes each step of a new case: filed, dispatched, handled (late, past
    the deadline, for about one case in seven while there is time), sometimes sent back and
    handled again, verified, closed, evaluated. Steps after the day's end are left for later."""
    steps: list[tuple[datetime, Step]] = []
    at = opened_at

    def then(low: float, high: float, step: Step) -> None:
        nonlocal at
        at = at + _minutes(rng.uniform(low, high))
        steps.append((at, step))

    then(3, 12, Step.FILE)
    then(3, 12, Step.DISPATCH)
    late = not featured and rng.random() < 0.15 and deadline + _minutes(60) < day_ends_at
    if late:
        at = max(at, deadline)
        then(10, 40, Step.HANDLE)
    else:
        then(10, 35, Step.HANDLE)
    if featured or rng.random() < 0.2:
        then(5, 15, Step.SEND_BACK)
        then(10, 25, Step.HANDLE)
    then(5, 20, Step.VERIFY)
    then(3, 10, Step.CLOSE)
    if featured or rng.random() < 0.7:
        then(5, 20, Step.EVALUATE)
    return [(when, step) for when, step in steps if when < day_ends_at]


def evaluation_score(rng: random.Random) -> int:
    """How satisfied the evaluator is (1-5; mostly 4 or 5)."""
    return rng.choices([5, 4, 3, 2], [0.55, 0.3, 0.1, 0.05])[0]


def demo_violations(catalogue: dict[str, object], divisor: int = 12) -> dict[str, object]:
    """The violation catalogue with disposal deadlines in hours instead of days (24 h → 2 h), so
    that one simulated day shows cases handled late."""
    items = catalogue.get("violations")
    if not isinstance(items, list):
        raise ValueError("not a violation catalogue")
    shortened = [
        {**item, "deadline_hours": max(1, int(item["deadline_hours"]) // divisor)}
        for item in items
        if isinstance(item, dict)
    ]
    return {**catalogue, "violations": shortened}
