"""The edge of allocation's errors: domain codes -> HTTP status and zh-CN / en messages.

The domain raises :class:`~allocation.domain.errors.Rejected` with a stable code and no HTTP
status; one exception handler renders it as problem+json through :mod:`stallkit.problems`.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from allocation.domain.errors import Rejected
from stallkit.problems import problem_response, register_messages

#: Status of a refused request when its code is not in :data:`STATUS`: the request conflicts
#: with the state of the market, the stall or the booking.
DEFAULT_STATUS = 409

STATUS: dict[str, int] = {
    "stall_not_found": 404,
    "market_not_found": 404,
    "booking_not_found": 404,
    "vendor_not_found": 404,
    "window_not_found": 404,
    "category_not_permitted": 403,
    "health_certificate_required": 403,
    "vendor_suspended": 403,
    "outside_booking_horizon": 422,
    "idempotency_key_reused": 422,
    "idempotency_key_required": 400,
    "check_in_closed": 409,
    "stall_code_invalid": 422,
    "stall_code_revoked": 422,
    "wrong_stall": 422,
    "invalid_credentials": 401,
    "too_many_attempts": 429,
    "suspension_too_long": 422,
    "suspension_not_found": 404,
    "invalid_date_range": 422,
    "date_in_past": 422,
    "date_out_of_range": 422,
    "application_not_found": 404,
    "draw_not_found": 404,
    "draw_pending": 503,
    "identity_taken": 409,
    "too_many_registrations": 429,
    "too_many_bookings": 429,
    "registration_not_found": 404,
    "invalid_code": 422,
    "sms_unavailable": 503,
    "claim_not_found": 404,
    "claim_pending": 409,
    "too_many_claims": 409,
    "illegal_claim_transition": 409,
    "claims_changed": 409,
}

MESSAGES: dict[str, tuple[str, str]] = {
    "stall_taken": ("该摊位此时段已被预订", "This stall is already booked for the window"),
    "applications_only": (
        "该时段摇号前只接受申请，摇号后剩余摊位先到先得",
        "Until the draw this window takes applications; what remains after it is first come",
    ),
    "draw_pending": (
        "该时段正在摇号，请稍后再试",
        "The window's draw is running; try again shortly",
    ),
    "applications_closed": ("该时段申请已截止", "Applications for this window are closed"),
    "application_not_found": ("找不到该申请", "Application not found"),
    "draw_not_found": ("该时段没有摇号", "No draw for this window"),
    "overlapping_application": (
        "您已申请同一时间的其他时段",
        "You already applied for a window at that time",
    ),
    "overlapping_booking": ("您在该时间段已有其他预订", "You already hold a booking at that time"),
    "weekly_cap_reached": ("已达到本周预订上限", "Weekly booking limit reached"),
    "category_not_permitted": (
        "您没有该摊位类别的经营许可",
        "You hold no permit for this category",
    ),
    "health_certificate_required": (
        "熟食摊位需要在该日期有效的健康证",
        "Cooked food needs a health certificate valid on that date",
    ),
    "outside_booking_horizon": ("不在可预订时间范围内", "Outside the booking horizon"),
    "held_for_priority": (
        "剩余摊位为优先群体保留",
        "The remaining stalls are held for priority groups",
    ),
    "vendor_suspended": ("因多次未到场，暂停预订资格", "Booking suspended after repeated no-shows"),
    "market_suspended": ("该市场在此日期暂停开放", "The market is suspended on that date"),
    "window_not_found": ("该市场此日期没有这个时段", "The market has no such window on that date"),
    "stall_not_found": ("找不到该摊位", "Stall not found"),
    "stall_unavailable": ("该摊位暂停使用", "This stall is out of service"),
    "market_not_found": ("找不到该市场", "Market not found"),
    "booking_not_found": ("找不到该预订", "Booking not found"),
    "vendor_not_found": ("找不到该摊贩", "Vendor not found"),
    "idempotency_key_reused": (
        "该幂等键已用于不同的请求",
        "This Idempotency-Key was used for a different request",
    ),
    "idempotency_key_required": ("缺少 Idempotency-Key 请求头", "Idempotency-Key header required"),
    "illegal_transition": ("预订当前状态不允许该操作", "The booking's state does not allow this"),
    "check_in_closed": ("不在签到时间内", "Outside the check-in window"),
    "stall_code_invalid": ("摊位码无效或被伪造", "The stall code is invalid or forged"),
    "stall_code_revoked": ("摊位码已作废", "The stall code was revoked"),
    "wrong_stall": ("摊位码与预订的摊位不符", "The code is not of the booked stall"),
    "phone_taken": ("该手机号已注册", "This phone number is already registered"),
    "invalid_credentials": ("手机号或密码错误", "Wrong phone number or password"),
    "too_many_attempts": (
        "密码错误次数过多，请稍后再试",
        "Too many wrong passwords; try again later",
    ),
    "window_passed": ("该时段已结束", "The window is over"),
    "suspension_too_long": ("暂停时间过长", "Suspension range too long"),
    "suspension_not_found": ("找不到该暂停安排", "Suspension not found"),
    "invalid_date_range": ("结束日期早于开始日期", "The last date is before the first date"),
    "date_in_past": ("日期已过", "The date is in the past"),
    "date_out_of_range": ("日期超出可服务范围", "The date is outside the range served"),
    "catalogue_conflict": ("目录数据冲突", "Catalogue conflict"),
    "identity_taken": (
        "该身份证号码已注册账号（每人只能注册一个账号）",
        "An account is already registered with this identity number (one per person)",
    ),
    "too_many_bookings": (
        "预约操作过于频繁，请一分钟后再试",
        "Too many booking attempts; try again in a minute",
    ),
    "too_many_registrations": (
        "注册请求过于频繁，请稍后再试",
        "Too many registrations; try again later",
    ),
    "registration_not_found": (
        "找不到该注册，或已过期、已作废，请重新注册",
        "No such registration, or it expired or was voided; register again",
    ),
    "invalid_code": ("验证码错误", "Wrong verification code"),
    "sms_unavailable": (
        "短信暂时无法发送，请稍后再试",
        "The text message could not be sent; try again",
    ),
    "claim_not_found": ("找不到该资格申报", "Eligibility claim not found"),
    "claim_pending": (
        "已有相同的申报等待核实",
        "The same claim is already waiting to be verified",
    ),
    "too_many_claims": ("资格申报数量已达上限", "Too many eligibility claims"),
    "illegal_claim_transition": (
        "该申报当前状态不允许此决定",
        "The claim's status does not allow this decision",
    ),
    "claims_changed": (
        "该摊贩的申报正在被同时修改，请重试",
        "The vendor's claims changed meanwhile; try again",
    ),
}


def status_of(code: str) -> int:
    """The HTTP status a refusal with ``code`` is answered with."""
    return STATUS.get(code, DEFAULT_STATUS)


async def _render(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    response = problem_response(request, exc.code, status_of(exc.code), exc.detail, **exc.extra)
    retry_after = exc.extra.get("retry_after_seconds")
    if isinstance(retry_after, int | float):  # a 429 or 503 says when to try again
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def install_problems(app: FastAPI) -> None:
    """Render the domain's refusals as problem+json with their status and messages."""
    register_messages(MESSAGES)
    app.add_exception_handler(Rejected, _render)
