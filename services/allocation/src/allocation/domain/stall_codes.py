"""Stall codes: the implementation lives in :mod:`stallkit.stall_codes`, shared with inspection.

Re-exported here so that ``from allocation.domain import stall_codes`` keeps working.
"""

from __future__ import annotations

from stallkit.stall_codes import (
    PREFIX,
    StallCode,
    private_key_from_seed,
    public_key_b64,
    sign,
    verify,
)

__all__ = ["PREFIX", "StallCode", "private_key_from_seed", "public_key_b64", "sign", "verify"]
