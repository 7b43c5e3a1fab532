"""Webhook subscriptions of the district feeds: who gets which entries, how they are signed,
how failures are retried, and what the delivery log says.

Plain Python: storage and HTTP are elsewhere. Deliveries follow the Standard Webhooks
convention (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import random
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from reporting.domain.feed import FeedEntry

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ID_PREFIX = "wh_"
ID_PATTERN = r"^wh_[0-9a-f]{16}$"
MAX_URL_LENGTH = 2048


class WebhookError(Exception):
    """A refused webhook request, with a stable code and HTTP status."""

    def __init__(self, code: str, status: int, detail: str | None = None):
        super().__init__(detail or code)
        self.code = code
        self.status = status
        self.detail = detail


class Status(StrEnum):
    """A subscription delivers while active; paused after failing too long, until resumed."""

    ACTIVE = "active"
    PAUSED = "paused"


class Change(StrEnum):
    """What moves a subscription between states."""

    PAUSE = "pause"  # retries ran out
    RESUME = "resume"  # the office fixed its endpoint
    REPLAY = "replay"  # deliver again from an earlier position (also un-pauses)


#: The one transition table: (state, change) -> new state. Anything else is refused.
TRANSITIONS: dict[tuple[Status, Change], Status] = {
    (Status.ACTIVE, Change.PAUSE): Status.PAUSED,
    (Status.PAUSED, Change.RESUME): Status.ACTIVE,
    (Status.ACTIVE, Change.REPLAY): Status.ACTIVE,
    (Status.PAUSED, Change.REPLAY): Status.ACTIVE,
}


def transition(status: Status, change: Change) -> Status:
    """The state after ``change``, or a 409 error when it does not apply."""
    new = TRANSITIONS.get((status, change))
    if new is None:
        code = "webhook_not_paused" if change is Change.RESUME else "webhook_state_conflict"
        raise WebhookError(code, 409, f"cannot {change.value} a subscription that is {status}")
    return new


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    DELIVERED = "delivered"
    FAILED_ATTEMPT = "failed_attempt"  # to be retried
    PAUSED = "paused"  # failed, and retries ran out: the subscription paused


def new_subscription_id() -> str:
    """A fresh subscription id (``wh_`` + 16 hex digits)."""
    return ID_PREFIX + secrets.token_hex(8)


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: ``whsec_`` + base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, dev_mode: bool, loopback_only: bool = False) -> str:
    """The endpoint URL if deliveries may go there: https, or plain http to a loopback host in
    development mode (local receivers in tests); only loopback hosts at all when
    ``loopback_only`` (a development deployment sends nothing off the machine); a 422 error
    otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookError("webhook_url_refused", 422, "the URL is too long")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise WebhookError("webhook_url_refused", 422, "the URL does not parse") from exc
    if not host:
        raise WebhookError("webhook_url_refused", 422, "the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookError("webhook_url_refused", 422, "credentials do not belong in the URL")
    if parts.fragment:
        raise WebhookError("webhook_url_refused", 422, "the URL has a fragment")
    if loopback_only and not _loopback(host):
        raise WebhookError(
            "webhook_url_refused", 422, "this deployment delivers to loopback hosts only"
        )
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and dev_mode and _loopback(host):
        return url
    raise WebhookError(
        "webhook_url_refused", 422, "deliveries go to https URLs only (http to loopback in dev)"
    )


@dataclass(frozen=True)
class Subscription:
    """An office's endpoint for one feed, and what it wants from it."""

    id: str
    feed: str  # a district, or ``all``
    url: str
    secret: str
    event_types: tuple[str, ...] = ()  # entry types such as ``booking.created``; empty: all
    markets: tuple[str, ...] = ()  # empty: every market of the feed
    description: str = ""
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def wants(self, entry: FeedEntry) -> bool:
        """Whether ``entry`` is for this subscription (its type and market pass the filters)."""
        if self.event_types and entry.type not in self.event_types:
            return False
        return not self.markets or entry.market_id in self.markets


@dataclass(frozen=True)
class DeliveryState:
    """Where a subscription stands: its position, status, and the entry it is failing on.

    ``epoch`` changes whenever the position is set from outside (resume, replay), so that a
    delivery that started before cannot move the position afterwards.
    """

    status: Status
    cursor: str  # the last entry delivered (or filtered out)
    epoch: int = 0
    paused_at: dt.datetime | None = None
    paused_reason: str | None = None
    failing_entry: str | None = None
    failing_since: dt.datetime | None = None
    attempts: int = 0  # failed attempts at ``failing_entry``

    def attempt_at(self, entry_id: str) -> int:
        """The number the next attempt at ``entry_id`` has (1 for a first try)."""
        return self.attempts + 1 if self.failing_entry == entry_id else 1


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for at most ``max_retry`` after the first failure."""

    initial: float
    cap: float
    max_retry: float

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): half to all of
        ``initial * 2**(attempt-1)``, capped."""
        full = min(self.cap, self.initial * 2 ** min(attempt - 1, 60))
        return float(full * (0.5 + rand() / 2))

    def exhausted(self, failing_since: dt.datetime, now: dt.datetime) -> bool:
        """Whether retries have run for their whole time: the subscription pauses."""
        return (now - failing_since).total_seconds() >= self.max_retry

    def wait_after(
        self,
        attempt: int,
        failing_since: dt.datetime,
        now: dt.datetime,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """The wait before the next attempt; the last one falls when the retry time ends."""
        left = self.max_retry - (now - failing_since).total_seconds()
        return max(0.0, min(self.delay(attempt, rand), left))


@dataclass(frozen=True)
class Delivery:
    """One attempt in the delivery log."""

    entry_id: str
    event_id: str
    type: str
    attempt: int
    at: dt.datetime
    status_code: int | None  # the endpoint's HTTP status, None if no answer came
    error: str | None  # why it failed, when it did
    duration_ms: int
    outcome: Outcome

    def to_json(self) -> str:
        """The record as stored."""
        body = {
            "entry_id": self.entry_id,
            "event_id": self.event_id,
            "type": self.type,
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "outcome": self.outcome.value,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Delivery:
        """A stored record read back."""
        body: dict[str, Any] = json.loads(raw)
        return cls(
            entry_id=body["entry_id"],
            event_id=body["event_id"],
            type=body["type"],
            attempt=body["attempt"],
            at=dt.datetime.fromisoformat(body["at"]),
            status_code=body["status_code"],
            error=body["error"],
            duration_ms=body["duration_ms"],
            outcome=Outcome(body["outcome"]),
        )


def payload(entry: FeedEntry) -> str:
    """The body of a delivery: the entry as JSON, exactly as signed."""
    return json.dumps(entry.as_json(), ensure_ascii=False, separators=(",", ":"))


def signed_headers(secret: str, entry: FeedEntry, body: str, now: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers of a delivery; the id is the event's, stable on retries."""
    signature = Webhook(secret).sign(entry.event_id, now, body)
    return {
        "webhook-id": entry.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def position_before(entry_id: str) -> str:
    """The position just before ``entry_id``: reading after it starts with that entry."""
    ms, _, seq = entry_id.partition("-")
    if int(seq) > 0:
        return f"{ms}-{int(seq) - 1}"
    if int(ms) > 0:
        return f"{int(ms) - 1}-{2**64 - 1}"
    return "0-0"


def first_wanted(
    subscription: Subscription, entries: Iterable[FeedEntry]
) -> tuple[FeedEntry | None, str | None]:
    """The first entry ``subscription`` wants, and the last one before it that it does not
    (the position to move to when none is wanted)."""
    passed: str | None = None
    for entry in entries:
        if subscription.wants(entry):
            return entry, passed
        passed = entry.id
    return None, passed
