"""The boundary every source runs in (datasources/_source.py), without a database: driver
errors mapped inside the source, the deadline, and what may not escape it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from datasources import Shared, SourceBase
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
        await FakeSource(timeout=1).fail(OSError("no route to host 10.0.0.7:5432"))
    assert raised.value.source == "fake"
    assert "10.0.0.7" not in raised.value.message


async def test_a_unique_key_violation_is_a_conflict_and_coded_errors_pass_through() -> None:
    source = FakeSource(timeout=1)
    with pytest.raises(Conflict):
        await source.fail(KeyError("dup"))
    with pytest.raises(NotFound):
        await source.fail(NotFound("no such thing"))


async def test_a_call_past_the_deadline_is_unavailable_and_migrate_has_none() -> None:
    source = FakeSource(timeout=0.05)
    with pytest.raises(SourceUnavailable):
        await source.wait(1)
    await source.migrate()  # 0.2 s, four deadlines long


async def test_a_coroutine_inherited_from_a_mixin_is_inside_the_boundary_too() -> None:
    with pytest.raises(SourceUnavailable):
        await FakeSource(timeout=1).from_a_mixin()


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
