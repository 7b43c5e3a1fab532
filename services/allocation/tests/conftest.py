"""Allocation fixtures (defined in :mod:`allocation.testing`)."""

from allocation.testing import make_settings, svc

__all__ = ["make_settings", "svc"]
