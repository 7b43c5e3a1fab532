"""HTTP routes of the district feeds' webhook subscriptions (signed deliveries)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from contracts.catalogue import MARKET_ID_PATTERN, District
from contracts.events import ALL_EVENTS
from reporting.domain.feed import ALL
from reporting.domain.webhooks import (
    ID_PATTERN,
    MAX_URL_LENGTH,
    Delivery,
    DeliveryState,
    Outcome,
    Status,
    Subscription,
    WebhookError,
)
from reporting.service_layer.webhooks import Webhooks
from stallkit.auth import Principal, Role, require_role
from stallkit.openapi import problems
from stallkit.problems import ProblemError, register_messages

register_messages(
    {
        "webhook_not_found": ("找不到该 Webhook 订阅", "No such webhook subscription"),
        "webhook_url_refused": (
            "Webhook 地址须为 https（开发模式下可用本机 http）",
            "Webhook URLs must be https (plain http only to loopback in development)",
        ),
        "webhook_limit_reached": (
            "该区的 Webhook 订阅已达上限",
            "This feed has as many webhook subscriptions as it may",
        ),
        "webhook_not_paused": ("该订阅未暂停，无需恢复", "The subscription is not paused"),
        "webhook_state_conflict": ("订阅当前状态不允许此操作", "Not possible in this state"),
        "webhook_position_expired": (
            "该位置早于保留期限，其后的事件已删除",
            "That position is older than the feed's retention",
        ),
        "webhook_position_ahead": ("该位置尚不存在", "The feed has no such position yet"),
    }
)

KNOWN_TYPES = frozenset(e.event_name for e in ALL_EVENTS)
FEED_PATTERN = "^(" + "|".join([*(d.value for d in District), ALL]) + ")$"
ENTRY_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"

FeedName = Annotated[
    str, Path(pattern=FEED_PATTERN, description="A district, or `all` (administrators).")
]
SubscriptionId = Annotated[str, Path(pattern=ID_PATTERN, description="The subscription's id.")]
MarketId = Annotated[str, StringConstraints(pattern=MARKET_ID_PATTERN)]
Staff = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]

T = TypeVar("T")


class WebhookIn(BaseModel):
    """An office's endpoint and what it wants from the feed."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where deliveries are POSTed: an https URL.",
        examples=["https://xz-office.example.cn/hooks/markets"],
    )
    event_types: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Entry types to deliver (empty: all).",
        examples=[["booking.created", "inspection.case.opened"]],
    )
    markets: list[MarketId] = Field(
        default_factory=list,
        max_length=200,
        description="Only these markets' entries (empty: every market of the feed).",
        examples=[["XZ-03"]],
    )
    description: str = Field(
        default="", max_length=200, description="A note for the office.", examples=["值班系统"]
    )

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - KNOWN_TYPES)
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return value


class WebhookOut(BaseModel):
    """A subscription and where its deliveries stand (never its secret)."""

    id: str = Field(description="The subscription's id.", examples=["wh_3f2a9c01d4e5b6a7"])
    district: str = Field(description="The feed it follows.", examples=["xiangzhou"])
    url: str = Field(description="Where deliveries go.", examples=["https://xz.example.cn/hook"])
    event_types: list[str] = Field(description="Entry types delivered (empty: all).")
    markets: list[str] = Field(description="Markets delivered (empty: all).")
    description: str = Field(description="The office's note.", examples=["值班系统"])
    status: Status = Field(description="`active`, or `paused` after failing too long.")
    created_at: dt.datetime = Field(description="When it was registered.")
    delivered_through: str = Field(
        description="Feed position delivered up to: the next delivery is the entry after it.",
        examples=["1763640000000-0"],
    )
    failing_since: dt.datetime | None = Field(
        description="When the entry now being retried first failed.", examples=[None]
    )
    failed_attempts: int = Field(description="Failed attempts at that entry.", examples=[0])
    paused_at: dt.datetime | None = Field(description="When it was paused.", examples=[None])
    paused_reason: str | None = Field(description="Why it was paused.", examples=[None])


class WebhookCreated(WebhookOut):
    """A new subscription, with its signing secret: shown here once, never again."""

    secret: str = Field(
        description="Standard Webhooks signing secret (`whsec_` + base64); keep it safe.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class ReplayIn(BaseModel):
    """Where to deliver again from."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_id: str = Field(
        alias="from",
        pattern=ENTRY_ID_PATTERN,
        description="A feed entry id: it and every later wanted entry are delivered again.",
        examples=["1763640000000-0"],
    )


class DeliveryOut(BaseModel):
    """One delivery attempt."""

    entry_id: str = Field(description="The feed entry.", examples=["1763640000000-0"])
    event_id: str = Field(description="The event (the `webhook-id` header).")
    type: str = Field(description="The entry's type.", examples=["booking.created"])
    attempt: int = Field(description="1 for a first try, then 2, 3, ...", examples=[1])
    at: dt.datetime = Field(description="When the attempt began.")
    status_code: int | None = Field(description="The endpoint's HTTP status, if it answered.")
    error: str | None = Field(description="Why it failed (HTTP status, timeout, connection).")
    duration_ms: int = Field(description="How long the attempt took.", examples=[35])
    outcome: Outcome = Field(description="`delivered`, `failed_attempt` or `paused`.")


class DeliveryPage(BaseModel):
    """The latest delivery attempts, newest first."""

    deliveries: list[DeliveryOut]


def _out(sub: Subscription, state: DeliveryState) -> dict[str, Any]:
    return {
        "id": sub.id,
        "district": sub.feed,
        "url": sub.url,
        "event_types": list(sub.event_types),
        "markets": list(sub.markets),
        "description": sub.description,
        "status": state.status,
        "created_at": sub.created_at,
        "delivered_through": state.cursor,
        "failing_since": state.failing_since,
        "failed_attempts": state.attempts,
        "paused_at": state.paused_at,
        "paused_reason": state.paused_reason,
    }


def _delivery(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        entry_id=d.entry_id,
        event_id=d.event_id,
        type=d.type,
        attempt=d.attempt,
        at=d.at,
        status_code=d.status_code,
        error=d.error,
        duration_ms=d.duration_ms,
        outcome=d.outcome,
    )


async def _problems(call: Awaitable[T]) -> T:
    try:
        return await call
    except WebhookError as exc:
        raise ProblemError(exc.code, exc.status, exc.detail) from None


def _may_manage(principal: Principal, district: str) -> None:
    if principal.role is Role.DISTRICT and principal.district != district:
        raise ProblemError("other_district", 403, "a district office manages its own feed only")


_GONE: dict[int | str, dict[str, Any]] = {
    410: {"description": "That position is past the feed's retention."}
}


def webhooks_router(webhooks: Webhooks) -> APIRouter:
    """Routes registering and managing a feed's webhook subscriptions."""
    router = APIRouter(prefix="/v1/feeds/{district}/webhooks", tags=["feeds"])

    @router.post(
        "",
        status_code=201,
        response_model=WebhookCreated,
        responses=problems(403, 409, 422),
    )
    async def register(district: FeedName, body: WebhookIn, principal: Staff) -> WebhookCreated:
        """Register an endpoint for signed deliveries of the feed's entries from now on."""
        _may_manage(principal, district)
        sub, state = await _problems(
            webhooks.register(
                district,
                url=body.url,
                event_types=body.event_types,
                markets=body.markets,
                description=body.description,
            )
        )
        return WebhookCreated(**_out(sub, state), secret=sub.secret)

    @router.get("", response_model=list[WebhookOut], responses=problems(403))
    async def list_webhooks(district: FeedName, principal: Staff) -> list[WebhookOut]:
        """The feed's subscriptions, oldest first."""
        _may_manage(principal, district)
        return [WebhookOut(**_out(*pair)) for pair in await webhooks.in_feed(district)]

    @router.get("/{sub_id}", response_model=WebhookOut, responses=problems(403, 404))
    async def get_webhook(
        district: FeedName, sub_id: SubscriptionId, principal: Staff
    ) -> WebhookOut:
        """One subscription and where its deliveries stand."""
        _may_manage(principal, district)
        return WebhookOut(**_out(*await _problems(webhooks.get(district, sub_id))))

    @router.delete("/{sub_id}", status_code=204, responses=problems(403, 404))
    async def delete_webhook(
        district: FeedName, sub_id: SubscriptionId, principal: Staff
    ) -> Response:
        """Remove a subscription; its deliveries stop."""
        _may_manage(principal, district)
        await _problems(webhooks.delete(district, sub_id))
        return Response(status_code=204)

    @router.post(
        "/{sub_id}/resume",
        response_model=WebhookOut,
        responses={**problems(403, 404, 409), **_GONE},
    )
    async def resume(district: FeedName, sub_id: SubscriptionId, principal: Staff) -> WebhookOut:
        """Deliver again to a paused subscription, from the entry where it stopped."""
        _may_manage(principal, district)
        return WebhookOut(**_out(*await _problems(webhooks.resume(district, sub_id))))

    @router.post(
        "/{sub_id}/replay",
        response_model=WebhookOut,
        responses={**problems(403, 404, 422), **_GONE},
    )
    async def replay(
        district: FeedName,
        sub_id: SubscriptionId,
        principal: Staff,
        body: Annotated[ReplayIn, Body()],
    ) -> WebhookOut:
        """Deliver again from an entry on (it included); resumes a paused subscription."""
        _may_manage(principal, district)
        pair = await _problems(webhooks.replay(district, sub_id, body.from_id))
        return WebhookOut(**_out(*pair))

    @router.get("/{sub_id}/deliveries", response_model=DeliveryPage, responses=problems(403, 404))
    async def deliveries(
        district: FeedName,
        sub_id: SubscriptionId,
        principal: Staff,
        limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 100,
    ) -> DeliveryPage:
        """The delivery log: the latest attempts and their outcomes, newest first."""
        _may_manage(principal, district)
        found = await _problems(webhooks.deliveries(district, sub_id, limit))
        return DeliveryPage(deliveries=[_delivery(d) for d in found])

    return router
