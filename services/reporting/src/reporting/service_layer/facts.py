"""From events to the facts the figures are computed from (see ``reporting.domain.figures``)."""

from __future__ import annotations

from contracts.catalogue import MarketWindow
from contracts.envelope import Event, RawEnvelope
from contracts.events import (
    BookingCancelled,
    BookingCheckedIn,
    BookingCreated,
    BookingNoShow,
    BookingSuspendedByMarket,
    CaseClosed,
    CaseEvaluated,
    CaseHandled,
    CaseOpened,
    CaseSentBack,
    DrawCompleted,
    MarketChanged,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    ScanRecorded,
    ScheduleChanged,
    StallChanged,
    WarningIssued,
    WindowCancelled,
)
from reporting.adapters.facts_store import FactsStore, FactWrites
from reporting.domain.figures import WindowFacts, local_day


def window_facts(windows: list[MarketWindow]) -> list[WindowFacts]:
    """A schedule as reports need it."""
    return [
        WindowFacts(
            window_id=w.id,
            days=frozenset(w.days),
            start_minute=w.start.hour * 60 + w.start.minute,
            end_minute=w.end.hour * 60 + w.end.minute,
        )
        for w in windows
    ]


class FactsProjector:
    """Sets the facts an event tells; any event, any number of times, in any order."""

    def __init__(self, store: FactsStore):
        self.store = store

    async def on_event(self, event: Event, envelope: RawEnvelope, writes: FactWrites) -> None:
        """Record what ``event`` tells, if reports need it: catalogue facts at once, day and
        case facts staged in ``writes`` (written by its owner, :meth:`FactsStore.write`)."""
        store, at = self.store, envelope.time
        match event:
            case MarketChanged(market=market):
                await store.put_market(
                    market.id,
                    at,
                    district=market.district.value,
                    name_zh=market.name_zh,
                    name_en=market.name_en,
                )
                await store.put_schedule(market.id, at, window_facts(market.windows))
            case ScheduleChanged(windows=windows):
                await store.put_schedule(event.market_id, at, window_facts(windows))
            case StallChanged(stall=stall):
                await store.put_stall(stall.market_id, stall.id, at, stall.active)
            case MarketSuspensionDeclared():
                await store.put_suspension(
                    event.market_id, event.suspension_id, event.first_date, event.last_date
                )
            case MarketSuspensionLifted():
                await store.lift_suspension(
                    event.market_id, event.suspension_id, event.reopened_from
                )
            case BookingCreated():
                store.put_day(
                    writes,
                    event.market_id,
                    event.date,
                    f"b:{event.booking_id}",
                    {
                        "v": event.vendor_id,
                        "p": event.priority,
                        "w": event.window_id,
                        "s": event.starts_at.timestamp(),
                        "e": event.ends_at.timestamp(),
                    },
                )
            case BookingCancelled():
                store.put_day(
                    writes, event.market_id, event.date, f"x:{event.booking_id}", event.late
                )
            case BookingCheckedIn():
                store.put_day(
                    writes,
                    event.market_id,
                    event.date,
                    f"i:{event.booking_id}",
                    event.checked_in_at.timestamp(),
                )
            case BookingNoShow():
                store.put_day(writes, event.market_id, event.date, f"n:{event.booking_id}", 1)
            case BookingSuspendedByMarket():
                store.put_day(writes, event.market_id, event.date, f"u:{event.booking_id}", 1)
            case WindowCancelled():
                store.put_day(writes, event.market_id, event.date, f"cw:{event.window_id}", 1)
            case DrawCompleted():
                # One draw per window: a duplicate or a replay sets the same value again.
                store.put_day(
                    writes,
                    event.market_id,
                    event.date,
                    f"dr:{event.window_id}",
                    {
                        "a": sorted(set(event.applicant_ids)),
                        "w": sorted(set(event.winner_ids)),
                        "n": event.stalls,
                    },
                )
            case ScanRecorded():
                observed = event.observed_at or at
                store.put_day(
                    writes,
                    event.market_id,
                    local_day(observed),
                    f"s:{event.scan_id}",
                    {"o": event.outcome.value, "v": event.violations},
                )
            case WarningIssued():
                store.put_day(
                    writes, event.market_id, local_day(at), f"w:{event.warning_id}", event.violation
                )
            case CaseOpened():
                # The case's own facts first: a report finding it opened finds them too.
                store.put_case(
                    writes,
                    event.market_id,
                    event.case_id,
                    "o",
                    {"at": at.timestamp(), "due": event.deadline.timestamp(), "v": event.violation},
                )
                store.put_day(
                    writes, event.market_id, local_day(at), f"c:{event.case_id}", event.violation
                )
            case CaseHandled():
                ms = int(at.timestamp() * 1000)
                store.put_case(writes, event.market_id, event.case_id, f"h:{ms}", event.on_time)
            case CaseSentBack():
                ms = int(at.timestamp() * 1000)
                store.put_case(writes, event.market_id, event.case_id, f"r:{ms}", 1)
            case CaseClosed():
                store.put_case(writes, event.market_id, event.case_id, "k", at.timestamp())
                store.put_day(writes, event.market_id, local_day(at), f"k:{event.case_id}", 1)
            case CaseEvaluated():
                store.put_case(
                    writes, event.market_id, event.case_id, f"e:{envelope.id}", event.score
                )
            case _:
                pass
