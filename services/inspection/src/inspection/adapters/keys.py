"""Inspection's Redis key layout.

Two groups, each under its own hash tag so that a Redis Cluster keeps what one decision touches
in one slot:

- the projection of a market (``insp:{<market>}:...``, in ``expectation_store``), written by
  the consumers, read by scans;
- the enforcement data (``insp:{insp}:...``, built here): scans, subjects' violation history,
  warnings, cases, the hash-chained record of every district, evidence metadata, idempotency
  answers and the outbox. One scan decides on a subject's history across districts and appends
  to its district's record in one transaction, so these share a slot; the volume (thousands of
  scans an evening) fits one shard.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key builder under a deployment prefix (empty in production, per-test in tests)."""

    prefix: str = ""

    @property
    def base(self) -> str:
        """Prefix of every enforcement key."""
        return f"{self.prefix}insp:{{insp}}:"

    def k(self, *parts: str) -> str:
        """Key from parts under the base."""
        return self.base + ":".join(parts)

    def outbox(self) -> str:
        """The outbox stream of inspection's events."""
        return self.k("outbox")

    def idempotency(self, caller: str, key: str) -> str:
        """A stored answer to a request with an ``Idempotency-Key``, per caller."""
        return self.k("idem", caller, key)

    def scan(self, scan_id: str) -> str:
        """JSON of a scan."""
        return self.k("scan", scan_id)

    def subject_violations(self, subject: str) -> str:
        """Sorted set of a subject's violations (member: violation ref, score: observed ms)."""
        return self.k("subj", subject)

    def subject_items(self, subject: str) -> str:
        """Sorted set of a subject's warning and case ids by time (for the vendor's own list)."""
        return self.k("subjitems", subject)

    def warning(self, warning_id: str) -> str:
        """JSON of a warning."""
        return self.k("warning", warning_id)

    def case(self, case_id: str) -> str:
        """JSON of a case."""
        return self.k("case", case_id)

    def district_cases(self, district: str) -> str:
        """Sorted set of a district's case ids by opening time."""
        return self.k("cases", district)

    def record(self, district: str) -> str:
        """List of a district's enforcement record entries (JSON, hash-chained)."""
        return self.k("record", district)

    def record_head(self, district: str) -> str:
        """Hash with the record's last sequence number and hash."""
        return self.k("rhead", district)

    def evidence(self, sha256: str) -> str:
        """Hash with a stored photo's metadata (district, content type, size, uploader)."""
        return self.k("evidence", sha256)
