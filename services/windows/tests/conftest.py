"""Fixtures of the windows tests (shared ones, `publisher` among them: stalltest.plugin)."""

from __future__ import annotations

import pytest

from stalltest.plugin import SettingsFactory
from windows.config import WindowsSettings


@pytest.fixture
async def windows_settings(service_settings: SettingsFactory) -> WindowsSettings:
    """Settings on the session's broker and Redis, with this test's prefixes and topics."""
    return await service_settings(WindowsSettings)
