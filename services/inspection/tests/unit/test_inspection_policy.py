"""The scan outcome and the "1+1" decision, as plain rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.events import ScanOutcome
from inspection.domain.policy import (
    CodeCheck,
    Disposal,
    Observation,
    code_shape_is_stall_code,
    dispose,
    identity_subject,
    judge,
)
from inspection.domain.violations import ViolationCatalogue

CATALOGUE = ViolationCatalogue.load()
HERE = Observation(occupied=True, vendor_id="vd_alice", subject_id="vd_alice")
EMPTY = Observation(occupied=False)


@pytest.mark.parametrize(
    ("window_open", "expected", "seen", "outcome", "violation"),
    [
        (True, "vd_alice", HERE, ScanOutcome.COMPLIANT, None),
        (True, "vd_alice", EMPTY, ScanOutcome.BOOKED_BUT_VACANT, None),
        (True, None, HERE, ScanOutcome.OCCUPIED_WITHOUT_BOOKING, "unbooked_stall_use"),
        (True, None, EMPTY, ScanOutcome.COMPLIANT, None),
        (
            True,
            "vd_bob",
            HERE,
            ScanOutcome.WRONG_VENDOR,
            "stall_transfer",
        ),
        (False, "vd_alice", HERE, ScanOutcome.OVERTIME, "overtime_vending"),
        (False, None, HERE, ScanOutcome.OVERTIME, "overtime_vending"),
        (False, None, EMPTY, ScanOutcome.COMPLIANT, None),
    ],
)
def test_a_valid_code_is_judged_by_the_window_the_booking_and_who_is_there(
    window_open: bool,
    expected: str | None,
    seen: Observation,
    outcome: ScanOutcome,
    violation: str | None,
) -> None:
    finding = judge(CodeCheck.VALID, window_open=window_open, expected_vendor=expected, seen=seen)
    assert (finding.outcome, finding.violation) == (outcome, violation)
    assert violation is None or violation in CATALOGUE


@pytest.mark.parametrize(
    ("check", "outcome"),
    [
        (CodeCheck.UNREADABLE, ScanOutcome.INVALID_CODE),
        (CodeCheck.OTHER_STALL, ScanOutcome.INVALID_CODE),
        (CodeCheck.FORGED, ScanOutcome.FORGED_CODE),
        (CodeCheck.REVOKED, ScanOutcome.REVOKED_CODE),
        (CodeCheck.SUPERSEDED, ScanOutcome.REVOKED_CODE),
    ],
)
def test_a_bad_code_is_the_outcome_whatever_is_at_the_stall(
    check: CodeCheck, outcome: ScanOutcome
) -> None:
    finding = judge(check, window_open=True, expected_vendor="vd_alice", seen=HERE)
    assert finding == judge(check, window_open=False, expected_vendor=None, seen=EMPTY)
    assert (finding.outcome, finding.violation) == (outcome, None)


def test_a_text_shaped_like_a_code_whose_signature_fails_is_forged_not_unreadable() -> None:
    assert code_shape_is_stall_code("ZHSC1.XZ-03-A017.1." + "A" * 86)
    assert not code_shape_is_stall_code("https://example.com/pay?to=someone")
    assert not code_shape_is_stall_code("")


def test_a_first_warnable_violation_is_a_warning_and_a_repeat_a_case() -> None:
    litter = CATALOGUE["litter"]
    assert dispose([litter], earlier=0) == [(litter, Disposal.WARNING)]
    assert dispose([litter], earlier=1) == [(litter, Disposal.CASE)]


def test_a_violation_off_the_exemption_list_opens_a_case_even_the_first_time() -> None:
    fumes, litter = CATALOGUE["cooking_fumes"], CATALOGUE["litter"]
    assert not fumes.warnable
    assert dispose([fumes, litter], earlier=0) == [
        (fumes, Disposal.CASE),
        (litter, Disposal.WARNING),
    ]


def test_the_identity_number_is_kept_only_as_a_keyed_hash() -> None:
    number = "44040219900101123X"
    subject = identity_subject(number, "salt-one-sixteen-chars")
    assert number not in subject
    assert "1990" not in subject
    assert subject == identity_subject("440402 19900101 123x", "salt-one-sixteen-chars")
    assert subject != identity_subject(number, "another-salt-sixteen")
    with pytest.raises(ValueError, match="not an identity"):
        identity_subject("not a number!", "salt-one-sixteen-chars")


def test_the_catalogue_refuses_an_exempt_violation_that_is_not_minor(tmp_path: Path) -> None:
    data = json.loads(
        (Path(__file__).parents[2] / "src/inspection/catalogue/violations.json").read_text("utf-8")
    )
    data["violations"][0]["minor"] = False
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(ValueError, match="only minor"):
        ViolationCatalogue.load(path)
    data["violations"][0]["minor"] = True
    data["violations"] = [v for v in data["violations"] if v["type"] != "street_vending"]
    with pytest.raises(ValueError, match="street_vending"):
        ViolationCatalogue.parse(data)
