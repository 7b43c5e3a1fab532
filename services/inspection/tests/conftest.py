"""Fixtures of the inspection tests (shared ones, `publisher` among them: stalltest.plugin)."""

from __future__ import annotations

import pytest

from inspection.config import InspectionSettings
from stalltest.plugin import SettingsFactory


@pytest.fixture
async def inspection_settings(service_settings: SettingsFactory) -> InspectionSettings:
    """Settings on the session's broker and Redis, with this test's prefixes and topics."""
    return await service_settings(InspectionSettings)
