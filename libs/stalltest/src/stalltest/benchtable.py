"""Every benchmark's headline figures in one table: each beside its baseline of the same run.

Each ``bench_*`` module calls :func:`record` for its headline figures. When ``STALL_BENCH_TABLE``
names a file (``make bench`` sets it), the figures are appended there as JSON lines, and
``python -m stalltest.benchtable FILE`` prints them as one table: the figure, the baseline
measured in the same run, their ratio, the aim and whether it is met. Without the variable,
:func:`record` does nothing and each benchmark prints only its own lines.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

TABLE_VARIABLE = "STALL_BENCH_TABLE"


@dataclass(frozen=True)
class Figure:
    """One headline figure, its baseline of the same run, and its aim.

    ``aim`` is a bound on ``value / baseline`` (``aim_of="ratio"``) or on ``value`` itself
    (``aim_of="value"``, say a p99 in ms); ``higher`` says which side of the bound is good.
    """

    bench: str
    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline: float | None = None
    aim: float | None = None
    aim_of: str = "ratio"
    higher: bool = True

    @property
    def ratio(self) -> float | None:
        """``value / baseline``, when there is a baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the aim is met (None: no aim)."""
        if self.aim is None:
            return None
        measured = self.ratio if self.aim_of == "ratio" else self.value
        if measured is None:
            return False
        return measured >= self.aim if self.higher else measured <= self.aim


def record(figure: Figure, path: str | None = None) -> None:
    """Append ``figure`` to the table file named by ``STALL_BENCH_TABLE`` (if any)."""
    target = path or os.environ.get(TABLE_VARIABLE)
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(figure)) + "\n")


def load(path: Path) -> list[Figure]:
    """The figures recorded in ``path``, in order."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Figure(**json.loads(line)) for line in lines if line.strip()]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def render(figures: list[Figure]) -> str:
    """The figures as one plain-text table."""
    header = ("bench", "figure", "value", "baseline (same run)", "ratio", "aim", "met")
    rows = [header]
    for f in figures:
        baseline = "" if f.baseline is None else f"{f.baseline_name} {_number(f.baseline)}"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        aim = ""
        if f.aim is not None:
            unit = "" if f.aim_of == "ratio" else f" {f.unit}"
            aim = f"{'≥' if f.higher else '≤'} {f.aim:g}{unit}"
        met = {None: "", True: "yes", False: "NO"}[f.met]
        rows.append((f.bench, f.name, f"{_number(f.value)} {f.unit}", baseline, ratio, aim, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> None:
    """Print the table of the file given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m stalltest.benchtable FILE")
    figures = load(Path(args[0]))
    if not figures:
        raise SystemExit(f"no figures recorded in {args[0]}")
    print("\nall benchmarks, each figure beside its baseline measured in the same run")
    print(render(figures))


if __name__ == "__main__":
    main()
