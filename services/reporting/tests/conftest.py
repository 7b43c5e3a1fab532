"""Fixtures of the reporting tests (shared ones, `publisher` among them: stalltest.plugin)."""

from __future__ import annotations

import pytest

from reporting.config import ReportingSettings
from stalltest.plugin import SettingsFactory


@pytest.fixture
async def reporting_settings(service_settings: SettingsFactory) -> ReportingSettings:
    """Settings on the session's broker and Redis, with this test's prefixes and topics."""
    return await service_settings(ReportingSettings)
