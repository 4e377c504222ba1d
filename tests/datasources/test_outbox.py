"""Tombstones (datasources/outbox.py) are never read: every read function of a collection
with tombstones skips a deleted document still waiting for its event's delivery."""

from __future__ import annotations

from bson import ObjectId

from datasources import credentials as credentials_source
from datasources import outbox
from datasources import strategies as strategies_source
from tests.helpers import make_credentials, make_strategy, make_user


async def test_no_strategy_read_returns_a_tombstone(sources):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user, name="gone")
    event = outbox.event(user.id, "STRATEGY_DELETED", subject_id=strategy.id)
    db = sources.strategies.db
    deleted = await strategies_source.delete_strategy(
        db=db,
        strategy_id=strategy.id,
        user_id=user.id,
        name="gone",
        only_in=("STOPPED",),
        events=[event],
    )
    assert deleted is not None
    assert await db["strategies"].count_documents({"_id": ObjectId(strategy.id)}) == 1

    assert await strategies_source.find_strategies(db=db, ids=[strategy.id], user_ids=None) == []
    assert (
        await strategies_source.find_strategy(db=db, strategy_id=strategy.id, user_id=user.id)
        is None
    )
    assert (
        await strategies_source.find_strategy_by_name(db=db, user_id=user.id, name="gone") is None
    )
    page = await strategies_source.find_strategies_of_users(
        db=db, user_ids=[user.id], status=None, after=None, limit=10
    )
    assert page == []
    counts = await strategies_source.count_strategies_by_status(db=db, user_ids=[user.id])
    assert counts.get(user.id) is None or counts[user.id].count() == 0
    # Its name is free at once.
    await make_strategy(sources, user, name="gone")


async def test_no_credentials_read_returns_a_tombstone_and_a_save_revives_it(sources):
    user = await make_user(sources)
    await make_credentials(sources, user)
    db = sources.credentials.db
    event = outbox.event(user.id, "CREDENTIALS_DELETED")

    removed = await credentials_source.remove_credentials(db=db, user_id=user.id, events=[event])

    stored = await db["credentials"].find_one({"userId": ObjectId(user.id)})
    assert removed is not None
    assert stored is not None
    assert not set(credentials_source.SECRET_FIELDS) & set(stored)  # no secret kept
    assert await credentials_source.find_credentials(db=db, user_ids=[user.id]) == []
    await make_credentials(sources, user)
    [record] = await credentials_source.find_credentials(db=db, user_ids=[user.id])
    assert record.configured_fields
