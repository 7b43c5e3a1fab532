"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` until it has ended.

    A task that was inside ``with suppress(CancelledError): await ...`` (its own clean-up) when
    the cancel came swallows it and goes on; cancelling again until it is done keeps a
    shutdown from hanging on it.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
