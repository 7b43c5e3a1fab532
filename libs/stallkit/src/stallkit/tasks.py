"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` until every one has ended.

    A task that was inside ``with suppress(CancelledError): await ...`` (its own clean-up) when
    the cancel came swallows it and goes on; cancelling again until it is done keeps a
    shutdown from hanging on it. A cancel of the caller itself is not swallowed: it propagates
    as soon as it comes, so a task stopping its children can itself be stopped.
    """
    given = [task for task in tasks if task is not None]
    pending = {task for task in given if not task.done()}
    while pending:
        for running in pending:
            running.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for ended in given:  # an ending failure is the task's own; mark it seen, do not raise it
        if not ended.cancelled():
            ended.exception()
