"""``stallctl draw verify``: a published draw re-runs to its result (exit 0); an edited seed,
input or result is named and exits 1; a file that is not a published draw exits 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from contracts.catalogue import Category
from contracts.lottery import (
    Applicant,
    DrawInputs,
    DrawPublication,
    DrawStall,
    draw,
    seed_commitment,
)
from stallctl.cli import app

pytestmark = pytest.mark.unit

RUNNER = CliRunner()


def publication() -> dict[str, Any]:
    seed = hashlib.sha256(b"draw").hexdigest()
    inputs = DrawInputs(
        market_id="XZ-01",
        date="2026-12-10",
        window_id="evening",
        seed=seed,
        held_count=1,
        stalls=tuple(
            DrawStall(stall_id=f"XZ-01-C00{i}", category=Category.COOKED_FOOD) for i in (1, 2, 3)
        ),
        applicants=tuple(
            Applicant(
                pseudonym=f"ap{i:02d}",
                priority=i < 3,
                categories=frozenset({Category.COOKED_FOOD}),
                preferences=("XZ-01-C002",) if i % 2 else (),
            )
            for i in range(12)
        ),
    )
    published = DrawPublication(
        commitment=seed_commitment(seed), inputs=inputs, result=draw(inputs)
    )
    body: dict[str, Any] = json.loads(published.model_dump_json())
    return body


def run(tmp_path: Path, body: dict[str, Any] | str) -> tuple[int, str]:
    path = tmp_path / "draw.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body), "utf-8")
    result = RUNNER.invoke(app, ["draw", "verify", "--file", str(path)])
    return result.exit_code, result.output


def test_a_published_draw_verifies(tmp_path: Path) -> None:
    code, output = run(tmp_path, publication())
    assert code == 0, output
    assert "✓ XZ-01 2026-12-10 evening" in output
    assert "3 stalls to 12 applicants" in output


def test_an_edited_draw_does_not(tmp_path: Path) -> None:
    body = publication()
    body["inputs"]["seed"] = hashlib.sha256(b"another").hexdigest()
    code, output = run(tmp_path, body)
    assert code == 1
    assert "does not hash to the commitment" in output

    body = publication()
    body["result"]["awards"][0]["stall_id"], body["result"]["awards"][1]["stall_id"] = (
        body["result"]["awards"][1]["stall_id"],
        body["result"]["awards"][0]["stall_id"],
    )
    code, output = run(tmp_path, body)
    assert code == 1
    assert "stalls awarded differ" in output

    body = publication()
    body["inputs"]["applicants"] = body["inputs"]["applicants"][1:]  # one left out afterwards
    code, output = run(tmp_path, body)
    assert code == 1
    assert "order differs" in output


def test_a_file_that_is_not_a_draw_is_refused(tmp_path: Path) -> None:
    code, output = run(tmp_path, "{not json")
    assert code == 2
    assert "not a published draw" in output
    result = RUNNER.invoke(app, ["draw", "verify", "--file", str(tmp_path / "missing.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.output
