"""The request's own deadline and the shutdown drain (gateway/http.py `InFlight`): the answer
goes out when either comes, whatever the work is doing."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.errors import RequestTimedOut, ShuttingDown
from gateway.http import InFlight


async def work(seconds: float, ended: list[str] | None = None) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if ended is not None:
            ended.append("cancelled")
        raise
    return "done"


async def test_work_that_ends_in_time_gives_its_result() -> None:
    assert await InFlight().run(work(0.01), 1) == "done"


async def test_work_past_its_deadline_is_stopped_and_answered_at_once() -> None:
    in_flight = InFlight()
    ended: list[str] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(RequestTimedOut):
        await in_flight.run(work(5, ended), 0.05)

    assert loop.time() - started < 0.1
    await asyncio.sleep(0)
    assert ended == ["cancelled"]
    assert len(in_flight) == 0


async def test_a_drain_stops_running_and_later_work_when_the_grace_runs_out() -> None:
    in_flight = InFlight()
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(in_flight.run(work(5), 30))
    quick = asyncio.ensure_future(in_flight.run(work(0.01), 30))
    await asyncio.sleep(0)
    started = loop.time()

    in_flight.drain(0.1)
    late = asyncio.ensure_future(in_flight.run(work(5), 30))

    assert await quick == "done"  # what ends within the grace is answered as usual
    for stopped in (running, late):
        with pytest.raises(ShuttingDown):
            await stopped
    assert 0.1 <= loop.time() - started < 0.2


async def test_a_caller_that_goes_away_stops_its_work() -> None:
    in_flight = InFlight()
    ended: list[str] = []
    caller = asyncio.ensure_future(in_flight.run(work(5, ended), 30))
    await asyncio.sleep(0.01)

    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)

    assert ended == ["cancelled"]
