"""Trusted operations in the users database: concurrent saves of one id never both win."""

from __future__ import annotations

import asyncio
import hashlib

from datasources.persisted_operations import (
    PersistedOperation,
    SaveResult,
    list_operations,
    save_operations,
)


def operation(op_id: str, body: str) -> PersistedOperation:
    return PersistedOperation(id=op_id, sha256=hashlib.sha256(body.encode()).hexdigest(), body=body)


async def stored_bodies(sources) -> dict[str, str]:
    return {op.id: op.body for op in await list_operations(db=sources.users.db)}


async def test_concurrent_saves_of_one_id_with_different_bodies_report_one_conflict(sources):
    db = sources.users.db
    # Several rounds: each one a fresh race between two `gateway operations add` runs.
    for round_ in range(5):
        op_id = f"race-{round_}"
        first = operation(op_id, f"query First{round_} {{ __typename }}")
        second = operation(op_id, f"query Second{round_} {{ __typename }}")

        results = await asyncio.gather(
            save_operations(db=db, operations=[first]),
            save_operations(db=db, operations=[second]),
        )

        assert sorted((r.added, r.conflicts) for r in results) == [
            ((), (op_id,)),
            ((op_id,), ()),
        ]
        winner = first if results[0].added else second
        assert (await stored_bodies(sources))[op_id] == winner.body


async def test_concurrent_saves_of_one_id_with_the_same_body_add_it_once(sources):
    body = "query Same { __typename }"

    results = await asyncio.gather(
        save_operations(db=sources.users.db, operations=[operation("same", body)]),
        save_operations(db=sources.users.db, operations=[operation("same", body)]),
    )

    assert sorted(results, key=lambda r: r.added) == [
        SaveResult(unchanged=("same",)),
        SaveResult(added=("same",)),
    ]
    assert await stored_bodies(sources) == {"same": body}


async def test_the_run_that_loses_a_race_saves_none_of_its_operations(sources):
    db = sources.users.db
    for round_ in range(5):
        contested, other = f"contested-{round_}", f"other-{round_}"
        left = [operation(contested, "query Left { __typename }")]
        right = [
            operation(other, "query Other { __typename }"),
            operation(contested, "query Right { __typename }"),
        ]

        results = await asyncio.gather(
            save_operations(db=db, operations=left), save_operations(db=db, operations=right)
        )

        stored = await stored_bodies(sources)
        lost = [r for r in results if r.conflicts]
        assert [r.conflicts for r in lost] == [(contested,)]
        if lost[0] is results[1]:  # the run with two operations lost: neither was kept
            assert other not in stored
            assert stored[contested] == "query Left { __typename }"
        else:
            assert stored[other] == "query Other { __typename }"
            assert stored[contested] == "query Right { __typename }"
