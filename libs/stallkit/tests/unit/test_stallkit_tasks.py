"""Stopping background tasks: a shutdown never hangs on a task that swallowed one cancel."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from stallkit.tasks import cancel_and_wait

pytestmark = pytest.mark.unit


async def _stubborn(cleaned: asyncio.Event) -> None:
    """A loop whose clean-up awaits under ``suppress(CancelledError)``, as relays do."""
    while True:
        try:
            await asyncio.sleep(3600)
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)  # a cancel arriving here is swallowed
            cleaned.set()


async def test_a_task_that_swallows_a_cancel_is_still_stopped() -> None:
    cleaned = asyncio.Event()
    task = asyncio.create_task(_stubborn(cleaned))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 10)
    assert task.done()
    assert cleaned.is_set()


async def test_a_task_that_failed_while_stopping_does_not_fail_the_stopper() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("clean-up failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    await cancel_and_wait(task, None)
    assert isinstance(task.exception(), RuntimeError)


async def test_cancelling_the_stopper_is_not_swallowed() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.5)  # clean-up that takes a while

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(child))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    await cancel_and_wait(child)
