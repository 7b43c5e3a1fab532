"""The domain as plain Python: rules, the transition table, stall codes, settings (no sockets)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from allocation.adapters.catalogue_store import window_signature
from allocation.config import (
    DEV_IDENTITY_SALT,
    DEV_STALL_CODE_SEED_B64,
    DEV_VENDOR_TOKEN_SEED_B64,
    AllocationSettings,
)
from allocation.domain import stall_codes
from allocation.domain.errors import IllegalTransition, Rejected
from allocation.domain.model import (
    ACTIVE_STATES,
    TRANSITIONS,
    BookingAction,
    BookingState,
    PriorityGroup,
    next_state,
)
from allocation.domain.rules import (
    Policy,
    booking_opens_at,
    cancellation_is_late,
    check_in_window,
    held_stall_count,
    iso_week,
    no_show_period_start,
    no_show_suspension,
    occurrence,
    priority_hold_ends_at,
)
from contracts.catalogue import Category, District, Location, Market, MarketWindow
from stallkit.clock import MARKET_TZ
from stallkit.devkeys import dev_token_jwks
from stallkit.keys import Issuer, SigningKey
from stalltest.tokens import fresh_key, jwks_of

pytestmark = pytest.mark.unit

MONDAY = date(2026, 12, 7)
SATURDAY = MONDAY + timedelta(days=5)
POLICY = Policy()
PROD_SEED = base64.b64encode(b"p" * 32).decode()
PROD_VENDOR_SEED = base64.b64encode(b"v" * 32).decode()
PROD_JWKS = jwks_of(
    SigningKey.from_seed(Issuer.ALLOCATION, PROD_VENDOR_SEED), fresh_key(Issuer.STAFF)
)


def local(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=MARKET_TZ)


def market() -> Market:
    evening = MarketWindow(
        id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
        start=time(17, 30), end=time(22, 30),
    )  # fmt: skip
    morning = MarketWindow(
        id="morning", name_zh="早市", name_en="Morning", days=[6, 7],
        start=time(6, 0), end=time(10, 0),
    )  # fmt: skip
    return Market(
        id="XZ-91", district=District.XIANGZHOU, name_zh="测试", name_en="Test",
        location=Location(lat=22.27, lon=113.57), zones=[Category.DAILY_GOODS],
        windows=[evening, morning],
    )  # fmt: skip


# --- rules -----------------------------------------------------------------------------------


def test_occurrence_of_a_daily_window() -> None:
    occ = occurrence(market(), "evening", MONDAY)
    assert occ.market_id == "XZ-91"
    assert occ.date == MONDAY
    assert occ.starts_at == local(MONDAY, 17, 30)
    assert occ.ends_at == local(MONDAY, 22, 30)
    assert occ.iso_week == "2026-W50"


def test_window_signature_names_the_times_and_days_the_decision_relied_on() -> None:
    # The booking script refuses (stale) when the stored signature differs from this one.
    assert window_signature(market(), "evening") == f"{17 * 60 + 30}-{22 * 60 + 30}-1234567"
    assert window_signature(market(), "morning") == f"{6 * 60}-{10 * 60}-67"
    assert window_signature(market(), "midnight") == ""


def test_occurrence_iso_week_at_year_boundary() -> None:
    # 2027-01-01 is a Friday: it belongs to 2026's last ISO week.
    assert occurrence(market(), "evening", date(2027, 1, 1)).iso_week == "2026-W53"
    assert occurrence(market(), "evening", date(2027, 1, 4)).iso_week == "2027-W01"
    assert iso_week(date(2027, 1, 3)) == "2026-W53"  # Sunday: still the old year's week


def test_weekend_window_exists_on_saturday_only() -> None:
    assert occurrence(market(), "morning", SATURDAY).starts_at == local(SATURDAY, 6)


@pytest.mark.parametrize(
    ("window_id", "day"),
    [
        pytest.param("midnight", MONDAY, id="unknown-window"),
        pytest.param("morning", MONDAY, id="weekend-window-on-a-weekday"),
        pytest.param("Evening", MONDAY, id="ids-are-case-sensitive"),
    ],
)
def test_occurrence_window_not_found(window_id: str, day: date) -> None:
    with pytest.raises(Rejected) as raised:
        occurrence(market(), window_id, day)
    assert raised.value.code == "window_not_found"
    assert not hasattr(raised.value, "status")  # the domain speaks codes; the edge, HTTP


def test_booking_opens_at_local_midnight_of_d_minus_n() -> None:
    assert booking_opens_at(MONDAY, 3) == local(MONDAY - timedelta(days=3), 0)
    assert booking_opens_at(MONDAY, 7) == local(date(2026, 11, 30), 0)
    assert booking_opens_at(MONDAY, 0) == local(MONDAY, 0)
    # Local midnight in Asia/Shanghai is 16:00 UTC the day before.
    assert booking_opens_at(MONDAY, 3) == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def test_priority_hold_ends_on_d_minus_1_at_the_release_time() -> None:
    assert priority_hold_ends_at(POLICY, MONDAY) == local(MONDAY - timedelta(days=1), 18)
    assert priority_hold_ends_at(Policy(priority_hold_release_minute=9 * 60 + 15), MONDAY) == (
        local(MONDAY - timedelta(days=1), 9, 15)
    )


@pytest.mark.parametrize(
    ("total", "held"),
    [(0, 0), (1, 0), (3, 0), (4, 1), (10, 3), (20, 6), (70, 21), (80, 24)],
)
def test_held_stall_count_is_the_floor_of_the_share(total: int, held: int) -> None:
    assert held_stall_count(POLICY, total) == held


def test_held_stall_count_with_other_shares() -> None:
    assert held_stall_count(Policy(priority_hold_share=0.0), 80) == 0
    assert held_stall_count(Policy(priority_hold_share=1.0), 80) == 80
    assert 100 * 0.29 < 29  # floating point: the floor must not lose a stall
    assert held_stall_count(Policy(priority_hold_share=0.29), 100) == 29


def test_cancellation_is_late_from_the_cutoff_on() -> None:
    starts = local(MONDAY, 17, 30)
    cutoff = local(MONDAY, 15, 30)
    assert not cancellation_is_late(POLICY, starts, cutoff - timedelta(hours=5))
    assert not cancellation_is_late(POLICY, starts, cutoff - timedelta(microseconds=1))
    assert not cancellation_is_late(POLICY, starts, cutoff)  # exactly 2 h before: still free
    assert cancellation_is_late(POLICY, starts, cutoff + timedelta(microseconds=1))
    assert cancellation_is_late(POLICY, starts, starts)
    assert cancellation_is_late(POLICY, starts, starts + timedelta(hours=1))
    assert not cancellation_is_late(Policy(free_cancel_seconds=0), starts, starts)


def test_check_in_window_around_the_start() -> None:
    starts, ends = local(MONDAY, 17, 30), local(MONDAY, 22, 30)
    expected = (local(MONDAY, 17, 0), local(MONDAY, 18, 0))
    assert check_in_window(POLICY, starts, ends, local(MONDAY - timedelta(days=3), 9)) == expected
    assert check_in_window(POLICY, starts, ends, local(MONDAY, 17, 10)) == expected
    assert check_in_window(POLICY, starts, ends, starts) == expected


def test_check_in_window_for_a_late_same_day_booking() -> None:
    starts, ends = local(MONDAY, 17, 30), local(MONDAY, 22, 30)
    # Booked after the start: 30 minutes from the booking.
    assert check_in_window(POLICY, starts, ends, local(MONDAY, 19, 0)) == (
        local(MONDAY, 17, 0),
        local(MONDAY, 19, 30),
    )
    # Booked 10 minutes after the start: the regular close is later and stays.
    assert check_in_window(POLICY, starts, ends, local(MONDAY, 17, 40))[1] == local(MONDAY, 18, 10)
    # Booked 10 minutes before the end: capped at the end.
    assert check_in_window(POLICY, starts, ends, local(MONDAY, 22, 20))[1] == ends


def test_no_show_period_is_rolling() -> None:
    now = local(MONDAY, 18, 0)
    assert no_show_period_start(POLICY, now) == now - timedelta(days=30)
    assert no_show_period_start(Policy(no_show_period_seconds=3600), now) == local(MONDAY, 17)


def test_the_no_show_that_reaches_the_limit_suspends() -> None:
    now = local(MONDAY, 18, 0)
    assert no_show_suspension(POLICY, 1, now) is None
    assert no_show_suspension(POLICY, 2, now) is None
    assert no_show_suspension(POLICY, 3, now) == now + timedelta(days=7)
    assert no_show_suspension(POLICY, 4, now) == now + timedelta(days=7)
    assert no_show_suspension(Policy(no_show_limit=1), 1, now) == now + timedelta(days=7)
    shorter = Policy(no_show_suspension_seconds=86400)
    assert no_show_suspension(shorter, 3, now) == now + timedelta(days=1)


def test_priority_groups() -> None:
    assert not PriorityGroup.NONE.is_priority
    assert all(g.is_priority for g in PriorityGroup if g is not PriorityGroup.NONE)


# --- the transition table ----------------------------------------------------------------------

LEGAL = {
    (BookingState.BOOKED, BookingAction.CANCEL): BookingState.CANCELLED,
    (BookingState.BOOKED, BookingAction.CHECK_IN): BookingState.CHECKED_IN,
    (BookingState.BOOKED, BookingAction.MARK_NO_SHOW): BookingState.NO_SHOW,
    (BookingState.BOOKED, BookingAction.SUSPEND): BookingState.SUSPENDED,
    (BookingState.CHECKED_IN, BookingAction.SUSPEND): BookingState.SUSPENDED,
}
ALL_PAIRS = list(itertools.product(BookingState, BookingAction))
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in LEGAL]


def test_the_transition_table_is_exactly_the_legal_moves() -> None:
    assert TRANSITIONS == LEGAL
    assert frozenset({BookingState.BOOKED, BookingState.CHECKED_IN}) == ACTIVE_STATES


@pytest.mark.parametrize(
    ("state", "action"), list(LEGAL), ids=[f"{s.value}-{a.value}" for s, a in LEGAL]
)
def test_legal_transition(state: BookingState, action: BookingAction) -> None:
    assert next_state(state, action) is LEGAL[(state, action)]


@pytest.mark.parametrize(
    ("state", "action"), ILLEGAL, ids=[f"{s.value}-{a.value}" for s, a in ILLEGAL]
)
def test_illegal_transition(state: BookingState, action: BookingAction) -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_state(state, action)
    assert raised.value.code == "illegal_transition"
    assert not hasattr(raised.value, "status")


def test_final_states_allow_nothing() -> None:
    for state in (BookingState.CANCELLED, BookingState.NO_SHOW, BookingState.SUSPENDED):
        for action in BookingAction:
            with pytest.raises(IllegalTransition):
                next_state(state, action)


# --- stall codes -------------------------------------------------------------------------------

KEY = stall_codes.private_key_from_seed(DEV_STALL_CODE_SEED_B64)
PUBLIC = KEY.public_key()


def _replace_signature_char(code: str) -> str:
    head, signature = code.rsplit(".", 1)
    i = 20
    return f"{head}.{signature[:i]}{'B' if signature[i] == 'A' else 'A'}{signature[i + 1 :]}"


def test_sign_then_verify_round_trip() -> None:
    code = stall_codes.sign(KEY, "XZ-91-A017", 3)
    assert code.startswith("ZHSC1.XZ-91-A017.3.")
    assert stall_codes.verify(PUBLIC, code) == stall_codes.StallCode("XZ-91-A017", 3)
    assert stall_codes.verify(PUBLIC, f"  {code}\n") == stall_codes.StallCode("XZ-91-A017", 3)
    # Deterministic (Ed25519): the same stall and version always print the same code.
    assert stall_codes.sign(KEY, "XZ-91-A017", 3) == code


def test_public_key_is_the_raw_32_bytes() -> None:
    raw = base64.b64decode(stall_codes.public_key_b64(KEY))
    assert len(raw) == 32


def _flip_spare_bit(code: str) -> str:
    """Same signature bytes, other spelling: the last base64 character carries 2 spare bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return code[:-1] + alphabet[alphabet.index(code[-1]) ^ 1]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: c.replace("XZ-91-A017", "XZ-91-A018"), id="stall-id"),
        pytest.param(lambda c: c.replace("XZ-91-A017", "XZ-92-A017"), id="market"),
        pytest.param(lambda c: c.replace(".3.", ".4.", 1), id="version"),
        pytest.param(_replace_signature_char, id="signature-char"),
        pytest.param(lambda c: c[:-1], id="signature-truncated"),
        pytest.param(lambda c: c + "A", id="signature-extended"),
        pytest.param(lambda c: c.replace("ZHSC1", "ZHSC2", 1), id="prefix"),
        pytest.param(lambda c: c.rsplit(".", 1)[0] + "." + "A" * 86, id="signature-zeros"),
        pytest.param(lambda c: "", id="empty"),
        pytest.param(lambda c: "https://example.com/XZ-91-A017", id="url"),
        pytest.param(lambda c: c.replace(".3.", ".03.", 1), id="version-leading-zero"),
        pytest.param(_flip_spare_bit, id="signature-spare-bits"),
    ],
)
def test_tampered_code_does_not_verify(tamper: Callable[[str], str]) -> None:
    code = stall_codes.sign(KEY, "XZ-91-A017", 3)
    tampered = tamper(code)
    assert tampered != code
    assert stall_codes.verify(PUBLIC, tampered) is None


def test_code_signed_by_another_key_does_not_verify() -> None:
    other = Ed25519PrivateKey.generate()
    forged = stall_codes.sign(other, "XZ-91-A017", 3)
    assert stall_codes.verify(PUBLIC, forged) is None
    assert stall_codes.verify(other.public_key(), forged) == stall_codes.StallCode("XZ-91-A017", 3)


# --- settings ----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No deployment variables leak into the settings under test."""
    for name in (
        "STALL_MODE", "STALL_JWT_SECRET", "STALL_TOKEN_JWKS", "STALL_TOKEN_JWKS_FILE",
        "ALLOCATION_STALL_CODE_SIGNING_KEY", "ALLOCATION_TOKEN_SIGNING_KEY",
        "ALLOCATION_IDENTITY_SALT", "ALLOCATION_SMS_GATEWAY_URL", "ALLOCATION_SMS_GATEWAY_TOKEN",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_dev_mode_accepts_the_development_secrets() -> None:
    settings = AllocationSettings()
    assert settings.token_signing_key == DEV_VENDOR_TOKEN_SEED_B64
    assert settings.stall_code_signing_key == DEV_STALL_CODE_SEED_B64
    assert settings.vendor_token_key().kid in settings.token_keys()  # the dev JWKS trusts it
    assert settings.weekly_cap == 5
    assert settings.priority_hold_share == pytest.approx(0.30)


PROD_SMS = {"sms_gateway_url": "https://sms.example.gov.cn/send", "sms_gateway_token": "t0ken"}
PROD_KEYS = {
    "stall_code_signing_key": PROD_SEED,
    "token_signing_key": PROD_VENDOR_SEED,
    "identity_salt": "5b1e0c7d9a2f4e68b3c1d0e9f8a7b6c5",
    **PROD_SMS,
}


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        pytest.param({}, "stall_code_signing_key", id="all-dev"),
        pytest.param({"stall_code_signing_key": PROD_SEED, "token_jwks": PROD_JWKS},
                     "token_signing_key still has its development value", id="dev-token-key"),
        pytest.param({"token_signing_key": PROD_VENDOR_SEED, "token_jwks": PROD_JWKS},
                     "stall_code_signing_key", id="dev-stall-code-key"),
        pytest.param(PROD_KEYS, "STALL_TOKEN_JWKS", id="no-jwks"),
        pytest.param({**PROD_KEYS, "token_jwks": json.dumps(dev_token_jwks())},
                     "development keys", id="dev-jwks"),
        pytest.param({**PROD_KEYS, "token_jwks": jwks_of(fresh_key(Issuer.STAFF))},
                     "not in STALL_TOKEN_JWKS", id="own-key-untrusted"),
        pytest.param({**PROD_KEYS, "token_jwks": PROD_JWKS, "clock_offset_seconds": 60},
                     "STALL_CLOCK", id="clock-offset"),
        pytest.param({**PROD_KEYS, "token_jwks": PROD_JWKS, "identity_salt": DEV_IDENTITY_SALT},
                     "identity_salt still has its development value", id="dev-identity-salt"),
        pytest.param({**PROD_KEYS, "token_jwks": PROD_JWKS, "sms_gateway_url": None},
                     "ALLOCATION_SMS_GATEWAY_URL is required", id="sms-outbox-file"),
        pytest.param({**PROD_KEYS, "token_jwks": PROD_JWKS, "sms_gateway_token": ""},
                     "ALLOCATION_SMS_GATEWAY_TOKEN is required", id="sms-no-token"),
    ],
)  # fmt: skip
def test_prod_mode_refuses_development_secrets(overrides: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError) as raised:
        AllocationSettings.model_validate({"mode": "prod", **overrides})
    assert complaint in str(raised.value)


@pytest.mark.usefixtures("clean_env")
def test_prod_mode_with_real_secrets() -> None:
    settings = AllocationSettings(mode="prod", token_jwks=PROD_JWKS, **PROD_KEYS)
    assert settings.mode == "prod"
    assert settings.vendor_token_key().kid in settings.token_keys()


@pytest.mark.usefixtures("clean_env")
def test_prod_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STALL_MODE", "prod")
    with pytest.raises(ValidationError):
        AllocationSettings()
    monkeypatch.setenv("STALL_TOKEN_JWKS", PROD_JWKS)
    monkeypatch.setenv("ALLOCATION_TOKEN_SIGNING_KEY", PROD_VENDOR_SEED)
    monkeypatch.setenv("ALLOCATION_STALL_CODE_SIGNING_KEY", PROD_SEED)
    monkeypatch.setenv("ALLOCATION_IDENTITY_SALT", PROD_KEYS["identity_salt"])
    with pytest.raises(ValidationError, match="ALLOCATION_SMS_GATEWAY_URL"):
        AllocationSettings()  # codes would go to a file, not to phones
    monkeypatch.setenv("ALLOCATION_SMS_GATEWAY_URL", PROD_SMS["sms_gateway_url"])
    monkeypatch.setenv("ALLOCATION_SMS_GATEWAY_TOKEN", PROD_SMS["sms_gateway_token"])
    assert AllocationSettings().token_signing_key == PROD_VENDOR_SEED


@pytest.mark.parametrize("field", ["stall_code_signing_key", "token_signing_key"])
@pytest.mark.parametrize(
    "seed",
    [
        pytest.param("not base64!", id="not-base64"),
        pytest.param(base64.b64encode(b"short").decode(), id="too-short"),
        pytest.param(base64.b64encode(b"x" * 64).decode(), id="too-long"),
    ],
)
def test_signing_key_must_be_a_32_byte_seed(field: str, seed: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AllocationSettings.model_validate({field: seed})


def test_rule_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        AllocationSettings(weekly_cap=0)
    with pytest.raises(ValidationError):
        AllocationSettings(priority_hold_share=1.5)
    with pytest.raises(ValidationError):
        AllocationSettings(priority_hold_release="6pm")
