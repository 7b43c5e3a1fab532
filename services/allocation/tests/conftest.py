"""Allocation fixtures (the service ones are defined in :mod:`stalltest.allocation`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from contracts.envelope import Envelope, RawEnvelope
from contracts.events import EVENTS_BY_TYPE
from stalltest.allocation import allocation, make_settings, store, svc

__all__ = ["allocation", "contract_check", "make_settings", "store", "svc"]


def _check(value: bytes | str) -> RawEnvelope:
    """Parse one event as it left allocation, strictly against its contract; return it."""
    envelope = RawEnvelope.model_validate_json(value, strict=True)
    unknown_attributes = set(json.loads(value)) - set(Envelope.model_fields)
    assert not unknown_attributes, f"{envelope.type}: {unknown_attributes}"
    model = EVENTS_BY_TYPE[envelope.type]
    model.model_validate_json(json.dumps(envelope.data), strict=True)
    unknown_fields = set(envelope.data) - set(model.model_fields)
    assert not unknown_fields, f"{envelope.type}: fields {unknown_fields} not in the contract"
    assert envelope.marketid == envelope.data["market_id"]
    return envelope


@pytest.fixture
def contract_check() -> Callable[[bytes | str], Any]:
    """A check that one event value is valid against its contract (strict); returns it."""
    return _check
