"""The app's background loops (deletion sweep, outbox relay) end at shutdown even when a
cancellation is lost on its way, as asyncio on Python 3.11 can lose one."""

from __future__ import annotations

import asyncio

from gateway.app import _stopped


async def test_a_loop_that_lost_its_cancellation_is_cancelled_again() -> None:
    swallowed: list[str] = []

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append("lost")  # as a cancellation lost inside a call would be

    task = asyncio.ensure_future(loop())
    await asyncio.sleep(0)

    await asyncio.wait_for(_stopped(task), 3)

    assert task.cancelled()
    assert swallowed == ["lost"]
