"""Webhook rules without I/O: where deliveries may go, secrets and signatures a receiver can
verify with the Standard Webhooks library, retry timing, states, filters and positions."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reporting.adapters.feed_log import id_before
from reporting.config import ReportingSettings
from reporting.domain.feed import FeedEntry
from reporting.domain.webhooks import (
    Change,
    Delivery,
    DeliveryState,
    Outcome,
    RetryPolicy,
    Status,
    Subscription,
    WebhookError,
    check_url,
    first_wanted,
    new_secret,
    payload,
    position_before,
    signed_headers,
    transition,
)
from stallkit.keys import Issuer
from stalltest.tokens import fresh_key, jwks_of

pytestmark = pytest.mark.unit

T = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def entry(n: int, type: str = "booking.created", market: str = "XZ-03") -> FeedEntry:
    return FeedEntry(
        id=f"{1763632800000 + n}-0",
        event_id=f"ev-{n}",
        type=type,
        market_id=market,
        district="xiangzhou",
        time=T,
        summary_zh=f"第 {n} 条（香洲）",
        summary_en=f"entry {n}",
        event={"n": n},
    )


def sub(**filters: tuple[str, ...]) -> Subscription:
    return Subscription(
        id="wh_0123456789abcdef",
        feed="xiangzhou",
        url="https://xz.example.cn/hook",
        secret=new_secret(),
        **filters,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://xz-office.example.cn/hooks/markets",
        "https://10.1.2.3:8443/hook?token=abc",
        "http://127.0.0.1:8080/hook",
        "http://127.8.9.10/hook",
        "http://localhost:9000/",
        "http://[::1]:9000/hook",
    ],
)
def test_https_anywhere_and_plain_http_to_loopback_in_development(url: str) -> None:
    assert check_url(url, dev_mode=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://xz-office.example.cn/hook",  # plain http to a real host
        "http://192.168.1.5/hook",
        "ftp://xz.example.cn/hook",
        "https://",  # no host
        "https://user:pass@xz.example.cn/hook",  # credentials would be logged everywhere
        "https://xz.example.cn:http/hook",  # port not a number
        "https://xz.example.cn/hook#part",
        "xz.example.cn/hook",
        "https://xz.example.cn/" + "a" * 2048,
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookError) as refused:
        check_url(url, dev_mode=True)
    assert (refused.value.code, refused.value.status) == ("webhook_url_refused", 422)


def test_production_refuses_plain_http_even_to_loopback() -> None:
    assert check_url("https://127.0.0.1/hook", dev_mode=False)
    with pytest.raises(WebhookError):
        check_url("http://127.0.0.1:8080/hook", dev_mode=False)


def test_a_development_deployment_delivers_to_loopback_only_unless_told_otherwise() -> None:
    dev = ReportingSettings()
    assert dev.webhooks_loopback_only()
    assert check_url("https://127.0.0.1:9443/hook", dev_mode=True, loopback_only=True)
    with pytest.raises(WebhookError) as refused:
        check_url("https://xz-office.example.cn/hook", dev_mode=True, loopback_only=True)
    assert refused.value.code == "webhook_url_refused"
    assert not ReportingSettings(webhook_loopback_only=False).webhooks_loopback_only()
    jwks = jwks_of(fresh_key(Issuer.ALLOCATION), fresh_key(Issuer.STAFF))
    assert not ReportingSettings(stall_mode="prod", stall_token_jwks=jwks).webhooks_loopback_only()


def test_secrets_are_standard_webhooks_secrets_and_fresh_each_time() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert new_secret() != secret
    Webhook(secret)  # the reference library takes it


def test_a_delivery_verifies_with_the_reference_library_and_a_tampered_one_does_not() -> None:
    secret = new_secret()
    e = entry(1)
    body = payload(e)
    headers = signed_headers(secret, e, body, dt.datetime.now(dt.UTC))
    assert headers["webhook-id"] == "ev-1"
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(body.encode(), headers) == e.as_json()
    assert json.loads(body)["summary_zh"] == "第 1 条（香洲）"  # UTF-8, not escaped
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("ev-1", "ev-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap_and_end_in_time() -> None:
    policy = RetryPolicy(initial=1.0, cap=60.0, max_retry=3600.0)
    assert policy.delay(1, rand=lambda: 0.0) == 0.5
    assert policy.delay(1, rand=lambda: 1.0) == 1.0
    assert policy.delay(4, rand=lambda: 1.0) == 8.0
    assert policy.delay(30, rand=lambda: 1.0) == 60.0
    assert policy.delay(10_000, rand=lambda: 0.0) == 30.0
    assert all(0.5 <= policy.delay(1) <= 1.0 for _ in range(100))
    since = T
    assert not policy.exhausted(since, T + dt.timedelta(seconds=3599))
    assert policy.exhausted(since, T + dt.timedelta(seconds=3600))
    # The last wait ends when the retry time does, so the pause comes on time.
    assert policy.wait_after(30, since, T + dt.timedelta(seconds=3590), rand=lambda: 1.0) == 10.0
    assert policy.wait_after(30, since, T + dt.timedelta(seconds=4000)) == 0.0


def test_states_move_only_as_the_table_says() -> None:
    assert transition(Status.ACTIVE, Change.PAUSE) is Status.PAUSED
    assert transition(Status.PAUSED, Change.RESUME) is Status.ACTIVE
    assert transition(Status.PAUSED, Change.REPLAY) is Status.ACTIVE
    assert transition(Status.ACTIVE, Change.REPLAY) is Status.ACTIVE
    with pytest.raises(WebhookError) as not_paused:
        transition(Status.ACTIVE, Change.RESUME)
    assert (not_paused.value.code, not_paused.value.status) == ("webhook_not_paused", 409)
    with pytest.raises(WebhookError):
        transition(Status.PAUSED, Change.PAUSE)


def test_filters_pick_entries_by_type_and_market() -> None:
    everything = sub()
    cases = sub(event_types=("inspection.case.opened",))
    xz03 = sub(markets=("XZ-03",))
    booked, case, elsewhere = entry(1), entry(2, "inspection.case.opened"), entry(3, market="XZ-07")
    assert all(everything.wants(e) for e in (booked, case, elsewhere))
    assert [cases.wants(e) for e in (booked, case, elsewhere)] == [False, True, False]
    assert [xz03.wants(e) for e in (booked, case, elsewhere)] == [True, True, False]
    assert first_wanted(cases, [booked, elsewhere, case]) == (case, elsewhere.id)
    assert first_wanted(cases, [booked, elsewhere]) == (None, elsewhere.id)
    assert first_wanted(everything, []) == (None, None)


@pytest.mark.parametrize(
    ("entry_id", "before"),
    [("5-3", "5-2"), ("1763632800001-0", f"1763632800000-{2**64 - 1}"), ("0-0", "0-0")],
)
def test_replaying_from_an_entry_starts_with_that_entry(entry_id: str, before: str) -> None:
    assert position_before(entry_id) == before
    if entry_id != "0-0":
        assert id_before(before, entry_id)


def test_attempts_are_numbered_per_entry_and_the_log_record_round_trips() -> None:
    state = DeliveryState(Status.ACTIVE, "1-0", failing_entry="2-0", attempts=3)
    assert state.attempt_at("2-0") == 4
    assert state.attempt_at("3-0") == 1
    record = Delivery(
        "2-0", "ev-2", "booking.created", 4, T, None, "timeout", 10_000, Outcome.PAUSED
    )
    assert Delivery.from_json(record.to_json()) == record
