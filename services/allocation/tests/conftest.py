"""Allocation fixtures (defined in :mod:`stalltest.allocation`)."""

from stalltest.allocation import make_settings, svc

__all__ = ["make_settings", "svc"]
