"""The one error the embedded runtime and the seeding command report to the operator."""

from __future__ import annotations


class StartupError(RuntimeError):
    """The embedded system could not start; the message says why and what to do."""
