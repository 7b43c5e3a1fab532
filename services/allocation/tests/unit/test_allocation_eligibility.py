"""Eligibility claims and identity numbers as plain Python (no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from allocation.adapters.registrations import PendingRegistration, code_digest
from allocation.adapters.sms import FileSmsOutbox, SmsNotSent
from allocation.adapters.vendor_store import eligibility_fields, eligibility_from
from allocation.domain.eligibility import (
    CLAIM_TRANSITIONS,
    Claim,
    ClaimKind,
    ClaimStatus,
    Eligibility,
    decide,
    eligibility_of,
    in_order,
    stated_claims,
)
from allocation.domain.errors import Rejected
from allocation.domain.identity import (
    check_character,
    identity_digest,
    identity_number_problem,
)
from allocation.domain.model import PriorityGroup
from allocation.service_layer.registrations import code_text, notice_text
from contracts.catalogue import Category
from stallkit.clock import Clock

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
TODAY = date(2026, 12, 7)


def claim(
    kind: ClaimKind, value: str, status: ClaimStatus = ClaimStatus.CLAIMED, **more: Any
) -> Claim:
    """A claim made at ``AT``."""
    return Claim(id=f"cl_{kind.value[:4]}{value[:8]}", kind=kind, value=value, status=status,
                 claimed_at=AT, **more)  # fmt: skip


def verified(kind: ClaimKind, value: str, expires: date | None = None) -> Claim:
    """A verified claim."""
    return claim(kind, value, ClaimStatus.VERIFIED, expires=expires, decided_by="d1",
                 decided_at=AT, document_ref="doc")  # fmt: skip


# --- the transition table ----------------------------------------------------------------------


@pytest.mark.parametrize("start", list(ClaimStatus))
@pytest.mark.parametrize("to", [ClaimStatus.VERIFIED, ClaimStatus.REJECTED])
def test_a_claim_is_decided_once_and_only_a_verified_one_is_revoked(
    start: ClaimStatus, to: ClaimStatus
) -> None:
    pending = claim(ClaimKind.CATEGORY, "daily_goods", start)
    if (start, to) in CLAIM_TRANSITIONS:
        decided = decide(pending, to, by="d1", at=AT, today=TODAY, document_ref="doc",
                         reason="why")  # fmt: skip
        assert decided.status is to
        assert (decided.decided_by, decided.decided_at) == ("d1", AT)
    else:
        with pytest.raises(Rejected) as refused:
            decide(pending, to, by="d1", at=AT, today=TODAY, document_ref="doc", reason="why")
        assert refused.value.code == "illegal_claim_transition"
        assert refused.value.extra == {"claim_status": start.value}
    assert {(a, b) for a, b in CLAIM_TRANSITIONS} == {
        (ClaimStatus.CLAIMED, ClaimStatus.VERIFIED),
        (ClaimStatus.CLAIMED, ClaimStatus.REJECTED),
        (ClaimStatus.VERIFIED, ClaimStatus.REJECTED),
    }


def test_a_health_certificate_is_verified_until_its_stated_expiry_unless_staff_say_otherwise() -> (
    None
):
    certificate = claim(ClaimKind.HEALTH_CERTIFICATE, "2027-06-30")
    stated = decide(certificate, ClaimStatus.VERIFIED, by="d1", at=AT, today=TODAY,
                    document_ref="doc")  # fmt: skip
    read_off = decide(certificate, ClaimStatus.VERIFIED, by="d1", at=AT, today=TODAY,
                      document_ref="doc", expires=date(2027, 3, 31))  # fmt: skip
    assert stated.expires == date(2027, 6, 30)
    assert read_off.expires == date(2027, 3, 31)
    with pytest.raises(Rejected) as refused:
        decide(claim(ClaimKind.HEALTH_CERTIFICATE, "2026-12-06"), ClaimStatus.VERIFIED,
               by="d1", at=AT, today=TODAY, document_ref="doc")  # fmt: skip
    assert refused.value.code == "date_in_past"
    revoked = decide(stated, ClaimStatus.REJECTED, by="a1", at=AT, today=TODAY, reason="fake")
    assert (revoked.reason, revoked.document_ref, revoked.decided_by) == ("fake", "doc", "a1")


def test_a_claim_round_trips_as_stored() -> None:
    decided = verified(ClaimKind.PRIORITY_GROUP, "laid_off", date(2027, 1, 31))
    assert Claim.from_json(decided.to_json()) == decided
    pending = claim(ClaimKind.CATEGORY, "cooked_food")
    assert Claim.from_json(pending.to_json()) == pending


# --- what counts -------------------------------------------------------------------------------


def test_only_verified_claims_count_each_until_the_longest_verification() -> None:
    claims = [
        claim(ClaimKind.PRIORITY_GROUP, "college_student"),  # pending
        verified(ClaimKind.PRIORITY_GROUP, "low_income", date(2027, 1, 31)),
        verified(ClaimKind.PRIORITY_GROUP, "laid_off", date(2027, 6, 30)),
        verified(ClaimKind.CATEGORY, "cooked_food", date(2026, 12, 31)),
        verified(ClaimKind.CATEGORY, "cooked_food"),  # and another without expiry
        verified(ClaimKind.CATEGORY, "daily_goods", date(2026, 12, 8)),
        claim(ClaimKind.CATEGORY, "services", ClaimStatus.REJECTED, reason="no permit"),
        verified(ClaimKind.HEALTH_CERTIFICATE, "2027-01-31", date(2027, 1, 31)),
        verified(ClaimKind.HEALTH_CERTIFICATE, "2026-12-31", date(2026, 12, 31)),
    ]
    eligibility = eligibility_of(claims)
    assert eligibility == Eligibility(
        priority_group=PriorityGroup.LAID_OFF,
        priority_until=date(2027, 6, 30),
        categories={Category.COOKED_FOOD: None, Category.DAILY_GOODS: date(2026, 12, 8)},
        health_until=date(2027, 1, 31),
    )
    on_the_ninth = eligibility.on(date(2026, 12, 9))
    assert on_the_ninth.categories == {Category.COOKED_FOOD: None}
    later = eligibility.on(date(2027, 7, 1))
    assert (later.priority_group, later.priority_until, later.health_until) == (
        PriorityGroup.NONE, None, None,
    )  # fmt: skip
    assert eligibility_of([]) == Eligibility()


def test_the_vendor_hash_holds_the_verified_eligibility_and_each_limit() -> None:
    eligibility = Eligibility(
        priority_group=PriorityGroup.LOW_INCOME,
        priority_until=date(2027, 6, 30),
        categories={Category.COOKED_FOOD: None, Category.DAILY_GOODS: date(2026, 12, 8)},
        health_until=date(2027, 1, 31),
    )
    fields = eligibility_fields(eligibility)
    assert fields["priority"] == "1"
    assert fields["priority_until"] == "2027-06-30"
    assert fields["categories"] == "cooked_food,daily_goods"
    assert fields["cat_until:daily_goods"] == "2026-12-08"
    assert fields["cat_until:cooked_food"] == fields["cat_until:services"] == ""
    assert fields["health_until"] == "2027-01-31"
    assert eligibility_from(fields) == eligibility
    assert eligibility_fields(Eligibility())["priority"] == "0"
    # A vendor stored before limits existed: nothing expires.
    legacy = eligibility_from({"priority_group": "laid_off", "categories": "services"})
    assert legacy.categories == {Category.SERVICES: None}
    assert legacy.priority_until is None


def test_a_registration_states_its_claims_in_order() -> None:
    stated = stated_claims(
        PriorityGroup.LAID_OFF, [Category.DAILY_GOODS, Category.COOKED_FOOD], date(2027, 6, 30)
    )
    assert stated == [
        (ClaimKind.PRIORITY_GROUP, "laid_off"),
        (ClaimKind.CATEGORY, "cooked_food"),
        (ClaimKind.CATEGORY, "daily_goods"),
        (ClaimKind.HEALTH_CERTIFICATE, "2027-06-30"),
    ]
    assert stated_claims(PriorityGroup.NONE, [Category.SERVICES], None) == [
        (ClaimKind.CATEGORY, "services")
    ]
    made = [claim(k, v) for k, v in reversed(stated)]
    assert [(c.kind, c.value) for c in in_order(made)] == stated


# --- identity numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("11010519491231002X", True),
        ("440402199001011236", True),
        ("440402199001011237", False),  # wrong check digit
        ("11010519491231002x", False),  # the check character is an upper-case X
        ("1101051949123100", False),
        ("A10105194912310021", False),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", False),  # Arabic-Indic digits are digits, not ours
    ],
)
def test_identity_numbers_are_checked_with_iso_7064_mod_11_2(number: str, valid: bool) -> None:
    assert (identity_number_problem(number) is None) is valid


def test_the_check_character_and_the_salted_digest() -> None:
    assert check_character("11010519491231002") == "X"
    assert check_character("44040219900101123") == "6"
    with pytest.raises(ValueError, match="17 digits"):
        check_character("123")
    digest = identity_digest("salt-one-0123456789", "440402199001011236")
    assert digest == identity_digest("salt-one-0123456789", "440402199001011236")
    assert digest != identity_digest("salt-two-0123456789", "440402199001011236")
    assert "440402199001011236" not in digest
    assert len(digest) == 64


# --- registrations and text messages -----------------------------------------------------------


def test_a_registration_keeps_no_code_and_no_identity_number() -> None:
    registration = PendingRegistration(
        id="rg_0123456789abcdef", code_digest=code_digest("rg_0123456789abcdef", "042917"),
        name="陈小梅", phone="13800138000", password_hash="$argon2id$...",
        identity_digest=identity_digest("salt-one-0123456789", "440402199001011236"),
        claims=((ClaimKind.CATEGORY, "services"),), created_ts=1.5,
    )  # fmt: skip
    fields = registration.fields()
    assert "042917" not in json.dumps(fields)
    assert "440402199001011236" not in json.dumps(fields)
    assert PendingRegistration.of(registration.id, fields) == registration
    assert code_digest("rg_0123456789abcdef", "042917") != code_digest("rg_x", "042917")


def test_a_code_text_carries_the_code_and_a_notice_none() -> None:
    assert "042917" in code_text("042917", 10)
    assert "10" in code_text("042917", 10)
    assert not any(ch.isdigit() for ch in notice_text())


async def test_the_file_outbox_appends_one_json_line_per_message(tmp_path: Path) -> None:
    outbox = FileSmsOutbox(tmp_path / "nested" / "sms.jsonl", Clock())
    await outbox.send("13800138000", "第一条 first")
    await outbox.send("13900139000", "second")
    lines = [json.loads(line) for line in outbox.path.read_text("utf-8").splitlines()]
    assert [(m["phone"], m["text"]) for m in lines] == [
        ("13800138000", "第一条 first"),
        ("13900139000", "second"),
    ]
    assert all(datetime.fromisoformat(m["time"]) for m in lines)
    blocked = FileSmsOutbox(outbox.path / "not-a-folder" / "sms.jsonl", Clock())
    with pytest.raises(SmsNotSent):
        await blocked.send("13800138000", "x")
