"""The violation catalogue: which violations exist, which are minor and on the exemption list.

Kept as a data file (``inspection/catalogue/violations.json`` unless a setting names another), so
that the bureau can change a benchmark without a release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

#: Violation types a scan outcome itself amounts to, when someone is at the stall.
UNBOOKED_STALL_USE = "unbooked_stall_use"
STALL_TRANSFER = "stall_transfer"
OVERTIME_VENDING = "overtime_vending"
STREET_VENDING = "street_vending"


@dataclass(frozen=True)
class Violation:
    """One violation type and how it is handled."""

    type: str
    name_zh: str
    name_en: str
    minor: bool
    exempt: bool
    penalty_min_cny: int
    penalty_max_cny: int
    deadline_hours: int

    @property
    def warnable(self) -> bool:
        """Whether a first offence can end with a warning ("1+1"): minor and on the list."""
        return self.minor and self.exempt


class ViolationCatalogue:
    """The catalogue, by type."""

    def __init__(self, violations: list[Violation]):
        self.by_type = {v.type: v for v in violations}
        if len(self.by_type) != len(violations):
            raise ValueError("violation types must be unique")

    def __contains__(self, violation_type: object) -> bool:
        return violation_type in self.by_type

    def __getitem__(self, violation_type: str) -> Violation:
        return self.by_type[violation_type]

    def __iter__(self) -> Any:
        return iter(self.by_type.values())

    def unknown(self, types: list[str]) -> list[str]:
        """The types in ``types`` the catalogue does not have."""
        return [t for t in types if t not in self.by_type]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ViolationCatalogue:
        """From the data file's JSON; ValueError on anything malformed."""
        try:
            items = [Violation(**item) for item in data["violations"]]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed violation catalogue: {exc}") from exc
        for item in items:
            if item.penalty_min_cny < 0 or item.penalty_max_cny < item.penalty_min_cny:
                raise ValueError(f"violation {item.type}: penalty range is not a range")
            if item.deadline_hours <= 0:
                raise ValueError(f"violation {item.type}: deadline must be positive")
            if item.exempt and not item.minor:
                raise ValueError(f"violation {item.type}: only minor violations can be exempt")
        catalogue = cls(items)
        for required in (UNBOOKED_STALL_USE, STALL_TRANSFER, OVERTIME_VENDING, STREET_VENDING):
            if required not in catalogue:
                raise ValueError(f"the catalogue must define {required!r}")
        return catalogue

    @classmethod
    def load(cls, path: Path | None = None) -> ViolationCatalogue:
        """The catalogue at ``path``, or the packaged one."""
        if path is None:
            packaged = resources.files("inspection").joinpath("catalogue/violations.json")
            text = packaged.read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        return cls.parse(json.loads(text))
