"""The boundary every source runs in (datasources/_source.py), without a database: driver
errors mapped inside the source, the deadline, and what may not escape it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from datasources import CallKind, Deadlines, Shared, SourceBase, SourceLimits, deadline
from gateway.core.errors import Conflict, NotFound, SourceUnavailable


class Mixin:
    async def from_a_mixin(self) -> None:
        raise OSError("connection refused")


class FakeSource(Mixin, SourceBase):
    name = "fake"
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = (KeyError,)

    async def fail(self, error: BaseException) -> None:
        raise error

    async def wait(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "answered"

    async def migrate(self) -> None:
        await asyncio.sleep(0.2)


async def test_a_driver_failure_is_source_unavailable_naming_the_source() -> None:
    with pytest.raises(SourceUnavailable) as raised:
        await FakeSource(limits=SourceLimits(deadlines=Deadlines.every(1))).fail(
            OSError("no route to host 10.0.0.7:5432")
        )
    assert raised.value.source == "fake"
    assert "10.0.0.7" not in raised.value.message


async def test_a_unique_key_violation_is_a_conflict_and_coded_errors_pass_through() -> None:
    source = FakeSource(limits=SourceLimits(deadlines=Deadlines.every(1)))
    with pytest.raises(Conflict):
        await source.fail(KeyError("dup"))
    with pytest.raises(NotFound):
        await source.fail(NotFound("no such thing"))


async def test_a_call_past_the_deadline_is_unavailable_and_migrate_has_none() -> None:
    source = FakeSource(limits=SourceLimits(deadlines=Deadlines.every(0.05)))
    with pytest.raises(SourceUnavailable):
        await source.wait(1)
    await source.migrate()  # 0.2 s, four deadlines long


async def test_a_coroutine_inherited_from_a_mixin_is_inside_the_boundary_too() -> None:
    with pytest.raises(SourceUnavailable):
        await FakeSource(limits=SourceLimits(deadlines=Deadlines.every(1))).from_a_mixin()


def test_a_source_cannot_offer_an_async_iterator_that_would_escape_the_boundary() -> None:
    with pytest.raises(TypeError, match="must be a coroutine"):

        class Leaky(SourceBase):
            name = "leaky"

            async def rows(self) -> AsyncIterator[int]:
                yield 1


async def test_a_shared_resource_closes_once_with_its_last_user() -> None:
    closed: list[Any] = []

    async def close(resource: Any) -> None:
        closed.append(resource)

    shared = Shared("pool", close)
    shared.lease()
    shared.lease()
    await shared.release()
    assert closed == []
    await shared.release()
    await shared.release()  # one release too many changes nothing
    assert closed == ["pool"]


class Counted(SourceBase):
    name = "counted"

    def __init__(self, limits: SourceLimits) -> None:
        super().__init__(limits=limits)
        self.calls = 0
        self.down = True

    async def call(self) -> str:
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        return "answered"


async def test_the_breaker_opens_after_failures_in_a_row_and_then_fails_at_once() -> None:
    source = Counted(SourceLimits(breaker_failures=3, breaker_cooldown_seconds=60))
    for _ in range(3):
        with pytest.raises(SourceUnavailable):
            await source.call()
    assert source.breaker.state == "open"

    for _ in range(10):
        with pytest.raises(SourceUnavailable):
            await source.call()
    assert source.calls == 3  # nothing reached the database while open


async def test_after_the_cooldown_one_probe_decides() -> None:
    source = Counted(SourceLimits(breaker_failures=1, breaker_cooldown_seconds=0.05))
    with pytest.raises(SourceUnavailable):
        await source.call()
    await asyncio.sleep(0.06)
    assert source.breaker.state == "half-open"
    with pytest.raises(SourceUnavailable):
        await source.call()  # the probe fails: open again, at once
    assert source.breaker.state == "open"

    await asyncio.sleep(0.06)
    source.down = False
    assert await source.call() == "answered"
    assert source.breaker.state == "closed"
    assert source.calls == 3


async def test_a_conflict_is_an_answer_not_a_failure() -> None:
    source = FakeSource(limits=SourceLimits(deadlines=Deadlines.every(1), breaker_failures=1))
    with pytest.raises(Conflict):
        await source.fail(KeyError("dup"))
    assert source.breaker.state == "closed"


async def test_the_bulkhead_lets_only_so_many_calls_run_at_once() -> None:
    source = FakeSource(limits=SourceLimits(deadlines=Deadlines.every(0.2), concurrency=2))
    results = await asyncio.gather(
        source.wait(0.15), source.wait(0.15), source.wait(0.15), return_exceptions=True
    )
    answered = [result for result in results if result == "answered"]
    refused = [result for result in results if isinstance(result, SourceUnavailable)]
    assert (len(answered), len(refused)) == (2, 1)  # the third waited for a slot past 0.2 s


class DriverError(Exception):
    """Stands for a driver's base error class."""


class DuplicateKey(DriverError):
    """Stands for the driver's unique-key violation, a subclass of its base error."""


class DriverSource(SourceBase):
    name = "driver"
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (DriverError,)
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = (DuplicateKey,)

    async def fail(self, error: BaseException) -> None:
        raise error

    async def wait(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "answered"


async def test_conflicts_never_open_the_breaker_though_their_class_is_a_driver_error() -> None:
    source = DriverSource(limits=SourceLimits(deadlines=Deadlines.every(1), breaker_failures=2))
    for _ in range(5):
        with pytest.raises(Conflict):
            await source.fail(DuplicateKey())
    assert source.breaker.state == "closed"
    with pytest.raises(SourceUnavailable):
        await source.fail(DriverError())
    assert source.breaker.state == "closed"  # one failure of two


async def test_running_out_of_the_requests_time_is_not_the_sources_failure() -> None:
    source = DriverSource(limits=SourceLimits(deadlines=Deadlines.every(1), breaker_failures=1))
    for _ in range(3):
        with deadline(0.01), pytest.raises(SourceUnavailable):
            await source.wait(0.05)
    assert source.breaker.state == "closed"
    with pytest.raises(SourceUnavailable):  # its own deadline passing is
        await DriverSource(
            limits=SourceLimits(deadlines=Deadlines.every(0.01), breaker_failures=1)
        ).wait(0.05)


async def test_an_open_breaker_fails_at_once_even_when_every_slot_is_taken() -> None:
    source = DriverSource(
        limits=SourceLimits(deadlines=Deadlines.every(1), breaker_failures=1, concurrency=1)
    )
    with pytest.raises(SourceUnavailable):
        await source.fail(DriverError())
    busy = asyncio.ensure_future(asyncio.sleep(0))  # stands for nothing: slots stay free
    await busy
    started = asyncio.get_running_loop().time()
    with pytest.raises(SourceUnavailable):
        await source.wait(0.5)
    assert asyncio.get_running_loop().time() - started < 0.05


async def test_only_the_probe_frees_the_probe() -> None:
    source = DriverSource(
        limits=SourceLimits(
            deadlines=Deadlines.every(1), breaker_failures=1, breaker_cooldown_seconds=0.02
        )
    )
    with pytest.raises(SourceUnavailable):
        await source.fail(DriverError())
    await asyncio.sleep(0.03)
    probe = asyncio.ensure_future(source.wait(0.1))
    await asyncio.sleep(0.01)
    with pytest.raises(SourceUnavailable):  # one probe at a time
        await source.wait(0.01)
    assert await probe == "answered"
    assert source.breaker.state == "closed"


class KindedSource(SourceBase):
    name = "kinded"

    async def run(self, seconds: float, *, kind: CallKind) -> str:
        await asyncio.sleep(seconds)
        return kind

    async def forget_user(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_each_call_ends_by_the_deadline_of_its_kind() -> None:
    deadlines = Deadlines(lookup=0.05, aggregate=0.3, write=0.2)
    source = KindedSource(limits=SourceLimits(deadlines=deadlines, breaker_failures=100))
    loop = asyncio.get_running_loop()

    assert await source.run(0.1, kind="aggregate") == "aggregate"  # past a lookup's deadline
    assert await source.run(0.1, kind="write") == "write"
    cases: list[tuple[CallKind, float]] = [("lookup", 0.05), ("write", 0.2), ("aggregate", 0.3)]
    for kind, seconds in cases:
        started = loop.time()
        with pytest.raises(SourceUnavailable):
            await source.run(1, kind=kind)
        assert seconds <= loop.time() - started < seconds + 0.05
    await source.forget_user(0.1)  # a step of account deletion is a write


async def test_the_request_deadline_shortens_every_kind() -> None:
    source = KindedSource(limits=SourceLimits(deadlines=Deadlines.every(5)))
    started = asyncio.get_running_loop().time()
    with deadline(0.05), pytest.raises(SourceUnavailable):
        await source.run(1, kind="aggregate")
    assert asyncio.get_running_loop().time() - started < 0.1


class RacingSource(SourceBase):
    name = "racing"

    async def answer_as_the_caller_is_cancelled(self, caller: asyncio.Task[Any]) -> str:
        # The cancellation lands after the answer has woken the caller, before it resumes.
        loop = asyncio.get_running_loop()

        def cancel_next_turn() -> None:
            loop.call_soon(caller.cancel)

        loop.call_soon(cancel_next_turn)
        return "answered"


async def test_a_caller_cancelled_as_its_call_answers_is_still_cancelled() -> None:
    source = RacingSource(limits=SourceLimits(deadlines=Deadlines.every(1)))
    resumed_after = []

    async def caller() -> None:
        task = asyncio.current_task()
        assert task is not None
        await source.answer_as_the_caller_is_cancelled(task)
        resumed_after.append("the call")  # a lost cancellation runs on to here
        await asyncio.sleep(1)

    task = asyncio.ensure_future(caller())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 0.5)
    assert resumed_after == []
    assert task.cancelled()
