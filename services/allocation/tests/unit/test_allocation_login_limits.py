"""The login limits' settings and how a caller's address is counted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from allocation.config import AllocationSettings
from allocation.entrypoints.deps import client_key

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "counted_as"),
    [
        pytest.param("203.0.113.9", "203.0.113.9", id="ipv4"),
        pytest.param("2001:db8:5:6::1", "2001:db8:5:6::/64", id="ipv6-by-64"),
        pytest.param("2001:db8:5:6:ffff:1:2:3", "2001:db8:5:6::/64", id="ipv6-same-64"),
        pytest.param("::ffff:203.0.113.9", "203.0.113.9", id="ipv4-mapped"),
        pytest.param(None, "unknown", id="no-client"),
        pytest.param("testclient", "testclient", id="not-an-address"),
    ],
)
def test_a_caller_is_counted_by_its_address_or_its_ipv6_64(
    host: str | None, counted_as: str
) -> None:
    assert client_key(host) == counted_as


def test_the_defaults_keep_the_number_ceiling_out_of_one_address_reach() -> None:
    settings = AllocationSettings()
    # 10 a quarter of an hour from one address touch at most 5 quarters of any hour: 50 < 60.
    assert settings.max_login_failures * 5 < settings.login_failures_per_number


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"login_failures_per_number": 50}, id="ceiling-equal-to-one-address"),
        pytest.param({"max_login_failures": 20}, id="per-address-raised-alone"),
        pytest.param({"login_number_period_minutes": 24 * 60}, id="ceiling-period-lengthened"),
    ],
)
def test_limits_that_let_one_address_reach_the_number_ceiling_are_refused(
    limits: dict[str, int],
) -> None:
    with pytest.raises(ValidationError, match="one client address can make alone"):
        AllocationSettings.model_validate(limits)
