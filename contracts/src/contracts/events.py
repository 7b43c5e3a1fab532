"""Every v1 event as a pydantic model: past-tense names, ids only, never personal data."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from contracts.catalogue import Category, District, Market, MarketWindow, Stall
from contracts.envelope import Event


def _booking_id_field() -> Any:
    return Field(description="Booking id.", examples=["bk_8f14e45fceea167a"])


def _vendor_id_field() -> Any:
    return Field(
        description="Vendor id (never a name or phone number).", examples=["vd_3c59dc048e88"]
    )


def _stall_id_field() -> Any:
    return Field(description="Stall id.", examples=["XZ-03-A017"])


def _window_id_field() -> Any:
    return Field(description="Window id within the market.", examples=["evening"])


def _date_field() -> Any:
    return Field(description="Local (Asia/Shanghai) date of the window.", examples=["2026-11-23"])


# --- catalogue ---------------------------------------------------------------------------------


class CatalogueEvent(Event):
    """Base of catalogue changes."""

    topic: ClassVar[str] = "catalogue"


class MarketChanged(CatalogueEvent):
    """A market was created or changed; carries its full state, schedule included."""

    event_name: ClassVar[str] = "catalogue.market.changed"

    market: Market = Field(description="The market as it now stands.")


class StallChanged(CatalogueEvent):
    """A stall was created or changed (category, active flag)."""

    event_name: ClassVar[str] = "catalogue.stall.changed"

    stall: Stall = Field(description="The stall as it now stands.")

    def subject(self) -> str:
        """The stall."""
        return self.stall.id


class ScheduleChanged(CatalogueEvent):
    """A market's weekly schedule of windows was replaced."""

    event_name: ClassVar[str] = "catalogue.schedule.changed"

    windows: list[MarketWindow] = Field(description="The complete new schedule.")


class MarketSuspensionDeclared(CatalogueEvent):
    """An administrator suspended a market for a date range (typhoon, public event)."""

    event_name: ClassVar[str] = "catalogue.suspension.declared"

    suspension_id: str = Field(description="Suspension id.", examples=["sp_1a2b3c"])
    first_date: dt.date = Field(description="First suspended date (inclusive).")
    last_date: dt.date = Field(description="Last suspended date (inclusive).")
    reason: str = Field(max_length=200, examples=["台风红色预警 Typhoon signal red"])


class MarketSuspensionLifted(CatalogueEvent):
    """An administrator lifted one suspension: its dates from ``reopened_from`` on reopen.

    Dates another suspension of the market still covers stay suspended.
    """

    event_name: ClassVar[str] = "catalogue.suspension.lifted"

    suspension_id: str = Field(description="The lifted suspension's id.", examples=["sp_1a2b3c"])
    first_date: dt.date = Field(description="First date the suspension covered (inclusive).")
    last_date: dt.date = Field(description="Last date the suspension covered (inclusive).")
    reopened_from: dt.date = Field(
        description=(
            "First date reopened: the later of the lift's date and first_date (past dates stay "
            "as they were); after last_date when nothing was left to reopen."
        )
    )


class StallCodeIssued(CatalogueEvent):
    """A new stall code was issued; older codes of the stall stop verifying."""

    event_name: ClassVar[str] = "catalogue.stall_code.issued"

    stall_id: str = _stall_id_field()
    code_version: int = Field(ge=1, description="Monotonic version of the stall's code.")

    def subject(self) -> str:
        """The stall."""
        return self.stall_id


class StallCodeRevoked(CatalogueEvent):
    """A stall code was revoked; scans of it are invalid."""

    event_name: ClassVar[str] = "catalogue.stall_code.revoked"

    stall_id: str = _stall_id_field()
    code_version: int = Field(ge=1, description="Revoked version.")

    def subject(self) -> str:
        """The stall."""
        return self.stall_id


# --- bookings ----------------------------------------------------------------------------------


class BookingEvent(Event):
    """Base of booking lifecycle events."""

    topic: ClassVar[str] = "bookings"

    booking_id: str = _booking_id_field()
    vendor_id: str = _vendor_id_field()
    stall_id: str = _stall_id_field()
    date: dt.date = _date_field()
    window_id: str = _window_id_field()

    def subject(self) -> str:
        """The booking."""
        return self.booking_id


class BookingCreated(BookingEvent):
    """A vendor booked a stall for a window."""

    event_name: ClassVar[str] = "booking.created"

    category: Category = Field(description="Stall category.")
    starts_at: dt.datetime = Field(description="Window start (UTC).")
    ends_at: dt.datetime = Field(description="Window end (UTC).")
    priority: bool = Field(description="Whether the vendor belongs to a priority group.")
    check_in_closes_at: dt.datetime | None = Field(
        default=None,
        description=(
            "The booking's own check-in deadline (UTC): start + 30 min, or later for a booking "
            "made after the window started. The windows service times this booking's no-show "
            "by it (added in v1, optional: older producers leave it out)."
        ),
    )


class BookingCancelled(BookingEvent):
    """The vendor cancelled; ``late`` cancellations count as a no-show."""

    event_name: ClassVar[str] = "booking.cancelled"

    late: bool = Field(description="Cancelled after the free-cancellation cutoff.")


class BookingCheckedIn(BookingEvent):
    """The vendor scanned the stall code within the check-in window."""

    event_name: ClassVar[str] = "booking.checked_in"

    checked_in_at: dt.datetime = Field(description="When the vendor checked in (UTC).")


class BookingNoShow(BookingEvent):
    """The vendor did not check in by the deadline."""

    event_name: ClassVar[str] = "booking.no_show"

    no_shows_in_period: int = Field(ge=1, description="No-shows in the rolling period.")
    suspended_until: dt.datetime | None = Field(
        default=None, description="Set when this no-show suspended the vendor's booking."
    )


class BookingSuspendedByMarket(BookingEvent):
    """The booking was cancelled without penalty because the market was suspended."""

    event_name: ClassVar[str] = "booking.suspended_by_market"

    reason: str = Field(max_length=200, examples=["台风红色预警"])


class StallReleased(Event):
    """A stall became free again for the window (cancellation or no-show)."""

    topic: ClassVar[str] = "bookings"
    event_name: ClassVar[str] = "booking.stall_released"

    stall_id: str = _stall_id_field()
    date: dt.date = _date_field()
    window_id: str = _window_id_field()
    cause: str = Field(description="cancelled, no_show or suspended.", examples=["no_show"])

    def subject(self) -> str:
        """The stall."""
        return self.stall_id


class DrawEvent(Event):
    """About the lottery of one oversubscribed market window (``contracts.lottery``)."""

    topic: ClassVar[str] = "bookings"

    date: dt.date = _date_field()
    window_id: str = _window_id_field()

    def subject(self) -> str:
        """The draw: market, date and window."""
        return f"{self.market_id}/{self.date.isoformat()}/{self.window_id}"


class DrawScheduled(DrawEvent):
    """Applications for the window's draw are open; the seed is committed to, not revealed."""

    event_name: ClassVar[str] = "draw.scheduled"

    commitment: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the draw's seed (hex).",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    draw_at: dt.datetime = Field(
        description="When the draw runs and applications close (UTC).",
        examples=["2026-11-21T12:00:00Z"],
    )


class DrawCompleted(DrawEvent):
    """The draw ran: its seed is revealed; winners' bookings follow as ``booking.created``.

    The published inputs and result (pseudonyms only) are at allocation's
    ``GET /v1/draws/{market_id}/{date}/{window_id}``; this event carries vendor ids for the
    services that count per vendor (fairness figures).
    """

    event_name: ClassVar[str] = "draw.completed"

    seed: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="The revealed seed (hex).",
        examples=["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
    )
    result_digest: str = Field(
        description="SHA-256 of the result's canonical JSON.",
        examples=["fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"],
    )
    stalls: int = Field(ge=0, description="Stalls the draw could give.", examples=[20])
    applicant_ids: list[str] = Field(
        description="Vendor ids of every applicant.", examples=[["vd_1a2b", "vd_3c4d"]]
    )
    priority_applicant_ids: list[str] = Field(
        description="Those of them in a priority group.", examples=[["vd_3c4d"]]
    )
    winner_ids: list[str] = Field(
        description="Vendor ids that got a stall.", examples=[["vd_3c4d"]]
    )


# --- vendors -----------------------------------------------------------------------------------

#: The ``market_id`` (so the envelope's ``marketid`` and the Kafka key) of events about a vendor
#: rather than a market. It is not a market id (those look like ``XZ-03``), so no consumer takes
#: it for a market, and it is not empty (an empty key would read as "no scope"); every vendor
#: event goes to one partition of its topic, so one vendor's events stay in order.
VENDOR_EVENTS_KEY = "vendors"


class PriorityGroup(StrEnum):
    """Groups that may book earlier and use the held share of stalls (``none``: standard)."""

    NONE = "none"
    LAID_OFF = "laid_off"
    LOW_INCOME = "low_income"
    COLLEGE_STUDENT = "college_student"

    @property
    def is_priority(self) -> bool:
        """Whether the group enjoys priority."""
        return self is not PriorityGroup.NONE


class ClaimKind(StrEnum):
    """What a vendor's eligibility claim is about."""

    PRIORITY_GROUP = "priority_group"
    CATEGORY = "category"
    HEALTH_CERTIFICATE = "health_certificate"


class ClaimStatus(StrEnum):
    """Where an eligibility claim is: stated by the vendor, verified or rejected by staff."""

    CLAIMED = "claimed"
    VERIFIED = "verified"
    REJECTED = "rejected"


class VendorEligibilityChanged(Event):
    """District staff or an administrator decided one of a vendor's eligibility claims.

    Published on every decision (a verification, a rejection, the revocation of a verified
    claim), with what counts for the vendor after it: only verified claims do. Ids and
    eligibility only: no name, phone, identity number, document reference or reason text.
    ``market_id`` is ``vendors`` (:data:`VENDOR_EVENTS_KEY`): the event is about no market.
    """

    topic: ClassVar[str] = "bookings"
    event_name: ClassVar[str] = "vendor.eligibility.changed"

    market_id: str = Field(
        default=VENDOR_EVENTS_KEY,
        description=(
            "Always `vendors` for vendor events (not a market id): the Kafka key, so one "
            "vendor's events stay in order."
        ),
        examples=[VENDOR_EVENTS_KEY],
    )
    vendor_id: str = _vendor_id_field()
    priority_group: PriorityGroup = Field(
        description="The verified priority group (`none`: books as a standard vendor).",
        examples=["laid_off"],
    )
    priority_until: dt.date | None = Field(
        default=None,
        description="Last local date the priority group counts; null: no expiry (or none).",
        examples=["2027-06-30"],
    )
    categories: list[Category] = Field(
        description="Stall categories the vendor holds a verified permit for.",
        examples=[["cooked_food", "daily_goods"]],
    )
    category_until: dict[Category, dt.date] = Field(
        default_factory=dict,
        description="Last local date of each of those permits that expires (others do not).",
        examples=[{"cooked_food": "2027-06-30"}],
    )
    health_certificate_until: dt.date | None = Field(
        default=None,
        description="Last local date of the verified health certificate; null: none verified.",
        examples=["2027-06-30"],
    )
    claim_id: str = Field(description="The claim decided.", examples=["cl_5d41402abc4b2a76"])
    claim_kind: ClaimKind = Field(description="What it claimed.", examples=["category"])
    claim_value: str = Field(
        description=(
            "What it claimed: the priority group, the category, or the health certificate's "
            "expiry date as the vendor stated it."
        ),
        examples=["cooked_food"],
    )
    decision: ClaimStatus = Field(
        description="`verified` or `rejected` (a verified claim rejected later is revoked).",
        examples=["verified"],
    )
    decided_by: str = Field(
        description="Staff member (token subject) who decided.", examples=["district-xz-01"]
    )

    def subject(self) -> str:
        """The vendor."""
        return self.vendor_id


# --- windows -----------------------------------------------------------------------------------


class WindowEvent(Event):
    """Base of the window timeline."""

    topic: ClassVar[str] = "windows"

    date: dt.date = _date_field()
    window_id: str = _window_id_field()
    district: District = Field(description="District of the market.")
    late_by_seconds: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Set when the event was published late (the windows service was down across its "
            "due time and caught up): how many seconds after its due time (added in v1, "
            "optional)."
        ),
        examples=[42.5],
    )

    def subject(self) -> str:
        """The market window occurrence."""
        return f"{self.market_id}/{self.date.isoformat()}/{self.window_id}"


class WindowOpened(WindowEvent):
    """A market window opened."""

    event_name: ClassVar[str] = "window.opened"

    closes_at: dt.datetime = Field(description="When it will close (UTC).")


class WindowClosingSoon(WindowEvent):
    """A market window closes soon; vendors should pack up."""

    event_name: ClassVar[str] = "window.closing_soon"

    closes_at: dt.datetime = Field(description="When it will close (UTC).")


class WindowClosed(WindowEvent):
    """A market window closed; vending there now is overtime."""

    event_name: ClassVar[str] = "window.closed"

    reason: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "Set when the window was closed early by an emergency closure: why (added in v1, "
            "optional; absent for a window closing at its scheduled end)."
        ),
        examples=["台风红色预警 Typhoon signal red"],
    )


class CheckInDeadlinePassed(WindowEvent):
    """Start + 30 min passed: unchecked bookings become no-shows."""

    event_name: ClassVar[str] = "window.check_in_deadline_passed"

    deadline: dt.datetime = Field(description="The deadline that passed (UTC).")


class WindowCancelled(WindowEvent):
    """A window instance announced in the timeline will not take place.

    Its window was removed from the schedule or moved, its date was suspended, or the market was
    closed for the rest of the day. Bookings of the instance end without penalty.
    """

    event_name: ClassVar[str] = "window.cancelled"

    cause: str = Field(
        description="schedule_changed, suspended or closed.", examples=["schedule_changed"]
    )
    reason: str = Field(max_length=200, examples=["窗口已从时间表中移除 Window removed"])


class BookingCheckInDeadlinePassed(WindowEvent):
    """One late booking's own check-in deadline passed (it was booked after the window started).

    ``window.check_in_deadline_passed`` covers the bookings whose deadline is the window's; a
    booking made later has its own, announced by this event.
    """

    event_name: ClassVar[str] = "window.booking_check_in_deadline_passed"

    booking_id: str = _booking_id_field()
    deadline: dt.datetime = Field(description="The booking's deadline that passed (UTC).")


class MarketSuspended(Event):
    """A market is suspended from now on (typhoon signal, public event)."""

    topic: ClassVar[str] = "windows"
    event_name: ClassVar[str] = "market.suspended"

    district: District = Field(description="District of the market.")
    first_date: dt.date = Field(description="First suspended date (inclusive).")
    last_date: dt.date = Field(description="Last suspended date (inclusive).")
    reason: str = Field(max_length=200, examples=["台风红色预警"])
    suspension_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Id of the suspension. Set it to the id of a catalogue.suspension.declared event "
            "when re-announcing that suspension: consumers apply each id once, so an "
            "announced suspension is not recorded twice. Without it the event id is the "
            "suspension's id (added in v1, optional: older producers leave it out)."
        ),
        examples=["sp_1a2b3c"],
    )
    late_by_seconds: float | None = Field(
        default=None,
        ge=0,
        description="As on window events: seconds late when caught up.",
        examples=[42.5],
    )


class MarketResumed(Event):
    """A suspended market is open again: one suspension, or (without an id) all of them."""

    topic: ClassVar[str] = "windows"
    event_name: ClassVar[str] = "market.resumed"

    district: District = Field(description="District of the market.")
    suspension_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "The suspension lifted: its dates from the day the consumer applies the event on "
            "reopen, unless another suspension covers them. Without it (older producers) "
            "every suspension of the market in force is lifted from that day on (added in v1, "
            "optional)."
        ),
        examples=["sp_1a2b3c"],
    )
    late_by_seconds: float | None = Field(
        default=None,
        ge=0,
        description="As on window events: seconds late when caught up.",
        examples=[42.5],
    )


# --- inspection --------------------------------------------------------------------------------


class ScanOutcome(StrEnum):
    """What a patrol scan found."""

    COMPLIANT = "compliant"
    BOOKED_BUT_VACANT = "booked_but_vacant"
    OCCUPIED_WITHOUT_BOOKING = "occupied_without_booking"
    WRONG_VENDOR = "wrong_vendor"
    OVERTIME = "overtime"
    INVALID_CODE = "invalid_code"
    FORGED_CODE = "forged_code"
    REVOKED_CODE = "revoked_code"


class CaseState(StrEnum):
    """Closed-loop case states (发现—上报—派遣—处置—核实—评价)."""

    REPORTED = "reported"
    FILED = "filed"
    DISPATCHED = "dispatched"
    HANDLED = "handled"
    VERIFIED = "verified"
    CLOSED = "closed"


class InspectionEvent(Event):
    """Base of inspection events."""

    topic: ClassVar[str] = "inspection"

    district: District = Field(description="District that answers for it.")


class ScanRecorded(InspectionEvent):
    """A patrol scanned a stall code and recorded what was there."""

    event_name: ClassVar[str] = "inspection.scan.recorded"

    scan_id: str = Field(examples=["sc_5f2b"])
    stall_id: str = _stall_id_field()
    outcome: ScanOutcome
    violations: list[str] = Field(default_factory=list, examples=[["litter"]])
    patrol_id: str = Field(examples=["patrol-xz-007"])
    observed_at: dt.datetime | None = Field(
        default=None,
        description=(
            "When the patrol saw it (UTC); earlier than the envelope's time for a scan queued "
            "on an offline phone. The outcome is judged at this time."
        ),
    )
    window_id: str | None = Field(
        default=None, description="The window running at the observation, if any."
    )
    vendor_id: str | None = Field(
        default=None, description="The registered vendor found at the stall, if any."
    )

    def subject(self) -> str:
        """The scan."""
        return self.scan_id


class WarningIssued(InspectionEvent):
    """A minor first offence got a warning without penalty ("1+1")."""

    event_name: ClassVar[str] = "inspection.warning.issued"

    warning_id: str = Field(examples=["wn_9a1c"])
    subject_id: str = Field(
        description=(
            "Vendor id warned, or for a street vendor without an account a salted hash of the "
            "identity number (never the number)."
        ),
        examples=["vd_3c59"],
    )
    violation: str = Field(examples=["out_of_line_box"])
    scan_id: str | None = Field(default=None, description="Scan or street report it came from.")
    stall_id: str | None = Field(default=None, description="Stall, when at a market.")

    def subject(self) -> str:
        """The warning."""
        return self.warning_id


class CaseOpened(InspectionEvent):
    """A repeat or non-exempt violation opened a case."""

    event_name: ClassVar[str] = "inspection.case.opened"

    case_id: str = Field(examples=["cs_77e1"])
    violation: str = Field(examples=["road_occupation"])
    deadline: dt.datetime = Field(description="Disposal deadline (UTC).")
    penalty_min_cny: int = Field(ge=0, description="Discretion benchmark: lower bound.")
    penalty_max_cny: int = Field(ge=0, description="Discretion benchmark: upper bound.")
    subject_id: str | None = Field(
        default=None, description="Vendor id, or the salted hash standing for an identity."
    )
    scan_id: str | None = Field(default=None, description="Scan or street report it came from.")
    stall_id: str | None = Field(default=None, description="Stall, when at a market.")

    def subject(self) -> str:
        """The case."""
        return self.case_id


class CaseTransitioned(InspectionEvent):
    """Base of case transitions: from one state to the next."""

    case_id: str = Field(examples=["cs_77e1"])
    from_state: CaseState
    to_state: CaseState
    actor_id: str = Field(description="Staff member who acted.", examples=["district-xz"])
    note: str = Field(default="", max_length=500)
    on_time: bool = Field(description="Whether the case is within its disposal deadline.")

    def subject(self) -> str:
        """The case."""
        return self.case_id


class CaseFiled(CaseTransitioned):
    """Reported → filed."""

    event_name: ClassVar[str] = "inspection.case.filed"


class CaseDispatched(CaseTransitioned):
    """Filed → dispatched to the district office."""

    event_name: ClassVar[str] = "inspection.case.dispatched"


class CaseHandled(CaseTransitioned):
    """Dispatched → handled by the district office."""

    event_name: ClassVar[str] = "inspection.case.handled"


class CaseSentBack(CaseTransitioned):
    """Verification failed: handled → dispatched again."""

    event_name: ClassVar[str] = "inspection.case.sent_back"


class CaseVerified(CaseTransitioned):
    """Handled → verified."""

    event_name: ClassVar[str] = "inspection.case.verified"


class CaseClosed(CaseTransitioned):
    """Verified → closed."""

    event_name: ClassVar[str] = "inspection.case.closed"


class CaseEvaluated(InspectionEvent):
    """A closed case was evaluated (1–5); the scores make the satisfaction rate."""

    event_name: ClassVar[str] = "inspection.case.evaluated"

    case_id: str = Field(examples=["cs_77e1"])
    score: int = Field(
        ge=1, le=5, description="1 (very unsatisfied) to 5 (very satisfied).", examples=[5]
    )
    by_role: str = Field(
        description="Role of who gave it (vendor, district, admin).", examples=["vendor"]
    )

    def subject(self) -> str:
        """The case."""
        return self.case_id


class StreetVendingReported(InspectionEvent):
    """A patrol reported vending outside any market (the market is the nearest one)."""

    event_name: ClassVar[str] = "inspection.street_report.recorded"

    report_id: str = Field(examples=["sr_1b2c"])
    lat: float = Field(description="Latitude (WGS-84).", examples=[22.2707])
    lon: float = Field(description="Longitude (WGS-84).", examples=[113.5767])
    guided_to: list[str] = Field(
        default_factory=list,
        description="Markets with free stalls the vendor was shown.",
        examples=[["XZ-03"]],
    )
    patrol_id: str = Field(examples=["patrol-xz-007"])

    def subject(self) -> str:
        """The report."""
        return self.report_id


ALL_EVENTS: tuple[type[Event], ...] = (
    MarketChanged,
    StallChanged,
    ScheduleChanged,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    StallCodeIssued,
    StallCodeRevoked,
    BookingCreated,
    BookingCancelled,
    BookingCheckedIn,
    BookingNoShow,
    BookingSuspendedByMarket,
    StallReleased,
    DrawScheduled,
    DrawCompleted,
    VendorEligibilityChanged,
    WindowOpened,
    WindowClosingSoon,
    WindowClosed,
    CheckInDeadlinePassed,
    WindowCancelled,
    BookingCheckInDeadlinePassed,
    MarketSuspended,
    MarketResumed,
    ScanRecorded,
    WarningIssued,
    CaseOpened,
    CaseFiled,
    CaseDispatched,
    CaseHandled,
    CaseSentBack,
    CaseVerified,
    CaseClosed,
    CaseEvaluated,
    StreetVendingReported,
)

EVENTS_BY_TYPE: dict[str, type[Event]] = {e.event_type(): e for e in ALL_EVENTS}
