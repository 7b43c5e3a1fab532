"""`make bench`'s one table: figures recorded by each benchmark, each beside its baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from stalltest.benchtable import TABLE_VARIABLE, Figure, load, main, record, render

pytestmark = pytest.mark.unit


def test_without_the_variable_a_benchmark_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TABLE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    record(Figure("allocation", "bookings", 800.0, "req/s", "bare", 1600.0, aim=0.5))
    assert list(tmp_path.iterdir()) == []


def test_figures_of_several_benchmarks_end_in_one_table_with_ratio_and_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "table.jsonl"
    monkeypatch.setenv(TABLE_VARIABLE, str(table))
    record(Figure("allocation", "POST /v1/bookings", 700.0, "req/s", "bare", 1600.0, aim=0.5))
    record(Figure("applications", "POST /v1/applications", 900.0, "req/s", "bookings", 700.0,
                  aim=1.0))  # fmt: skip
    record(Figure("feeds", "201 → SSE p99", 42.0, "ms", "bare Kafka p99", 12.0, aim=100,
                  aim_of="value", higher=False))  # fmt: skip
    record(Figure("inspection", "scan p99", 850.0, "ms", aim=20, aim_of="value", higher=False))

    figures = load(table)
    assert [f.met for f in figures] == [False, True, True, False]
    main([str(table)])
    rows = capsys.readouterr().out.splitlines()
    bookings = next(row for row in rows if "POST /v1/bookings" in row)
    assert "bare 1,600" in bookings
    assert "0.44" in bookings
    assert bookings.rstrip().endswith("NO")
    feeds = next(row for row in rows if "SSE" in row)
    assert "≤ 100 ms" in feeds
    assert feeds.rstrip().endswith("yes")


def test_an_empty_table_is_an_error_not_a_blank(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no figures"):
        main([str(tmp_path / "missing.jsonl")])


def test_columns_line_up() -> None:
    text = render([
        Figure("a", "short", 1.0, "ms"),
        Figure("windows", "timer lateness p99, 350 markets", 12.5, "ms", "bare", 3.0),
    ])  # fmt: skip
    lines = text.splitlines()
    starts = {line.index(lines[0].split()[1]) for line in lines[:1]}
    assert len(starts) == 1
    assert all(len(line) <= len(lines[1]) for line in lines)
