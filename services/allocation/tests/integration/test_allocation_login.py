"""Login: the OAuth2 password flow and the lockout after repeated wrong passwords."""

from __future__ import annotations

import pytest

from stalltest.allocation import RunningAllocation

pytestmark = pytest.mark.integration

PHONE = "13655554444"


async def test_wrong_passwords_lock_the_number_then_success_resets(svc: RunningAllocation) -> None:
    await svc.register(
        name="李师傅", phone=PHONE, password="right-password", categories=["services"]
    )
    async with svc.client() as c:

        async def login(password: str, phone: str = PHONE) -> tuple[int, str | None]:
            response = await c.post(
                "/v1/auth/token", data={"username": phone, "password": password}
            )
            return response.status_code, response.json().get("code")

        assert await login("wrong-1") == (401, "invalid_credentials")
        assert (await login("right-password"))[0] == 200  # a success clears the count
        for i in range(svc.settings.max_login_failures):
            assert await login(f"wrong-{i}") == (401, "invalid_credentials")
        # Locked: even the right password is refused until the lockout passes.
        assert await login("right-password") == (429, "too_many_attempts")
        # Other numbers are not affected.
        assert await login("whatever", phone="13655550000") == (401, "invalid_credentials")

        await svc.allocation.vendors.clear_login_failures(PHONE)  # the period has passed
        assert (await login("right-password"))[0] == 200
