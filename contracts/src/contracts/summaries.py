"""One-line Chinese and English summaries of events, for people following a feed (the district
feeds, ``stallctl feed``)."""

from __future__ import annotations

import re

from contracts.envelope import Event
from contracts.events import (
    BookingCancelled,
    BookingCheckedIn,
    BookingCreated,
    BookingNoShow,
    BookingSuspendedByMarket,
    CaseEvaluated,
    CaseOpened,
    CaseTransitioned,
    DrawCompleted,
    DrawScheduled,
    MarketChanged,
    MarketResumed,
    MarketSuspended,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    ScanRecorded,
    ScheduleChanged,
    StallChanged,
    StallCodeIssued,
    StallCodeRevoked,
    StallReleased,
    StreetVendingReported,
    VendorEligibilityChanged,
    WarningIssued,
    WindowCancelled,
    WindowClosed,
    WindowEvent,
    WindowOpened,
)

_TYPE = re.compile(r"^cn\.gov\.zhuhai\.markets\.(?P<name>.+)\.v\d+$")

_OUTCOME_ZH = {
    "compliant": "合规",
    "booked_but_vacant": "已预约但空置",
    "occupied_without_booking": "无预约占用",
    "wrong_vendor": "非预约摊贩经营",
    "overtime": "超时经营",
    "invalid_code": "摊位码无效",
    "forged_code": "摊位码伪造",
    "revoked_code": "摊位码已撤销",
}
_CLAIM_ZH = {
    "priority_group": "优先群体",
    "category": "经营类别",
    "health_certificate": "健康证",
}
_DECISION_ZH = {"verified": "已核实", "rejected": "被驳回", "claimed": "待核实"}
_STATE_ZH = {
    "reported": "上报",
    "filed": "立案",
    "dispatched": "派遣",
    "handled": "处置",
    "verified": "核实",
    "closed": "结案",
}


def short_type(envelope_type: str) -> str:
    """``cn.gov.zhuhai.markets.booking.created.v1`` → ``booking.created``."""
    match = _TYPE.match(envelope_type)
    return match.group("name") if match else envelope_type


def summarize(event: Event) -> tuple[str, str]:
    """A one-line Chinese and English summary of an event."""
    m = event.market_id
    if isinstance(event, BookingCreated):
        when = f"{event.date} {event.window_id}"
        return (
            f"{event.vendor_id} 预约了 {event.stall_id}（{when}）",
            f"{event.vendor_id} booked {event.stall_id} for {when}",
        )
    if isinstance(event, BookingCancelled):
        late = "（逾期取消，计为爽约）" if event.late else ""
        return (
            f"{event.vendor_id} 取消了 {event.stall_id} 的预约{late}",
            f"{event.vendor_id} cancelled {event.stall_id}" + (" late (a no-show)" if late else ""),
        )
    if isinstance(event, BookingCheckedIn):
        return (
            f"{event.vendor_id} 已在 {event.stall_id} 签到",
            f"{event.vendor_id} checked in at {event.stall_id}",
        )
    if isinstance(event, BookingNoShow):
        return (
            f"{event.vendor_id} 未按时签到 {event.stall_id}，摊位已释放",
            f"{event.vendor_id} did not check in at {event.stall_id}; stall released",
        )
    if isinstance(event, BookingSuspendedByMarket):
        return (
            f"{event.stall_id} 的预约因市场暂停取消：{event.reason}",
            f"Booking of {event.stall_id} cancelled, market suspended: {event.reason}",
        )
    if isinstance(event, StallReleased):
        return (f"{event.stall_id} 已释放可预约", f"{event.stall_id} released for booking")
    if isinstance(event, DrawScheduled):
        when = f"{event.date} {event.window_id}"
        return (
            f"{m} {when} 摊位申请开放，摇号种子已承诺",
            f"{m} {when}: applications open, draw seed committed",
        )
    if isinstance(event, DrawCompleted):
        when = f"{event.date} {event.window_id}"
        won, applied = len(event.winner_ids), len(event.applicant_ids)
        return (
            f"{m} {when} 摇号完成：{applied} 人申请，{won} 人中签",
            f"{m} {when} draw done: {won} of {applied} applicants got a stall",
        )
    if isinstance(event, VendorEligibilityChanged):
        kind, decision = event.claim_kind.value, event.decision.value
        return (
            f"{event.vendor_id} 的{_CLAIM_ZH.get(kind, kind)}申报（{event.claim_value}）"
            f"{_DECISION_ZH.get(decision, decision)}",
            f"{event.vendor_id}'s {kind.replace('_', ' ')} claim ({event.claim_value}) {decision}",
        )
    if isinstance(event, WindowOpened):
        return (f"{m} {event.window_id} 时段开市", f"{m} {event.window_id} window opened")
    if isinstance(event, WindowClosed):
        reason = f"：{event.reason}" if event.reason else ""
        return (
            f"{m} {event.window_id} 时段闭市{reason}",
            f"{m} {event.window_id} window closed" + (f": {event.reason}" if event.reason else ""),
        )
    if isinstance(event, WindowCancelled):
        return (
            f"{m} {event.date} {event.window_id} 时段取消",
            f"{m} {event.date} {event.window_id} window cancelled",
        )
    if isinstance(event, WindowEvent):
        name = short_type(event.event_type()).split(".", 1)[1].replace("_", " ")
        return (f"{m} {event.window_id} 时段：{name}", f"{m} {event.window_id} window: {name}")
    if isinstance(event, MarketSuspended):
        return (f"{m} 暂停开放", f"{m} suspended")
    if isinstance(event, MarketResumed):
        return (f"{m} 恢复开放", f"{m} resumed")
    if isinstance(event, MarketSuspensionDeclared):
        return (
            f"{m} 将于 {event.first_date}–{event.last_date} 暂停：{event.reason}",
            f"{m} to be suspended {event.first_date} to {event.last_date}: {event.reason}",
        )
    if isinstance(event, MarketSuspensionLifted):
        return (f"{m} 暂停提前解除", f"{m} suspension lifted early")
    if isinstance(event, MarketChanged):
        return (f"市场 {m} 信息更新", f"Market {m} updated")
    if isinstance(event, StallChanged):
        state = "" if event.stall.active else "（停用）"
        return (
            f"摊位 {event.stall.id} 信息更新{state}",
            f"Stall {event.stall.id} updated" + ("" if event.stall.active else " (inactive)"),
        )
    if isinstance(event, ScheduleChanged):
        names = ", ".join(w.id for w in event.windows)
        return (f"{m} 开市时段调整：{names}", f"{m} schedule changed: {names}")
    if isinstance(event, StallCodeIssued):
        return (
            f"{event.stall_id} 摊位码已重新签发（第 {event.code_version} 版）",
            f"{event.stall_id} code issued (version {event.code_version})",
        )
    if isinstance(event, StallCodeRevoked):
        return (
            f"{event.stall_id} 摊位码已撤销（第 {event.code_version} 版）",
            f"{event.stall_id} code revoked (version {event.code_version})",
        )
    if isinstance(event, ScanRecorded):
        outcome = event.outcome.value
        return (
            f"巡查扫码 {event.stall_id}：{_OUTCOME_ZH.get(outcome, outcome)}",
            f"Patrol scan at {event.stall_id}: {outcome.replace('_', ' ')}",
        )
    if isinstance(event, WarningIssued):
        return (
            f"首违警告（{event.violation}）{event.stall_id or m}",
            f"Warning, first minor offence ({event.violation}) at {event.stall_id or m}",
        )
    if isinstance(event, CaseOpened):
        return (
            f"立案前上报：{event.case_id}（{event.violation}）",
            f"Case {event.case_id} reported ({event.violation})",
        )
    if isinstance(event, CaseTransitioned):
        state = event.to_state.value
        late = "" if event.on_time else "（已超期）"
        return (
            f"案件 {event.case_id} {_STATE_ZH.get(state, state)}{late}",
            f"Case {event.case_id} {state}" + ("" if event.on_time else " (overdue)"),
        )
    if isinstance(event, CaseEvaluated):
        return (
            f"案件 {event.case_id} 评价 {event.score} 分",
            f"Case {event.case_id} rated {event.score}/5",
        )
    if isinstance(event, StreetVendingReported):
        return (
            "上报流动摊贩，已引导至附近市场",
            "Street vending reported; vendor guided to markets",
        )
    name = short_type(event.event_type())
    return (f"{name} {event.subject()}", f"{name} {event.subject()}")
