"""What a flood of persisted queries cannot do: fill the APQ Redis (bounded in entries and
characters, oldest dropped first), reach the users database per request (the trusted list
is held in memory), or break on a value it cannot read; and what /readyz says of the store
(README, "Persisted operations")."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import pytest
import redis.asyncio as aioredis

from gateway.persisted import QueryStore
from tests.helpers import app_client, body_of, error_codes
from tests.http.test_persisted_queries import (
    TRUSTED,
    assert_not_found,
    post,
    sha256,
    trust,
    unique_query,
)
from tests.unit.test_ratelimit import REDIS_URL, closed_port_url, delete_prefix

_ENTRY = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
async def redis_prefix():
    prefix = f"gw:test:apq:{uuid.uuid4().hex[:8]}:"
    yield prefix
    await delete_prefix(prefix)


async def held(prefix: str) -> dict[str, str]:
    """The queries the APQ store holds in Redis under `prefix`, by hash."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [
            key
            async for key in client.scan_iter(match=f"{prefix}*")
            if _ENTRY.fullmatch(key[len(prefix) :])
        ]
        values = await client.mget(keys) if keys else []
    finally:
        await client.aclose()
    return {
        key[len(prefix) :]: value if isinstance(value, str) else value.decode()
        for key, value in zip(keys, values, strict=True)
        if value is not None
    }


async def put_all(settings, prefix: str, queries: list[str], **overrides) -> None:
    """Register `queries` in order through a store on the test Redis (no memory in front)."""
    store = QueryStore(
        settings.model_copy(
            update={
                "apq_redis_url": REDIS_URL,
                "apq_redis_key_prefix": prefix,
                "apq_cache_entries": 0,
                **overrides,
            }
        )
    )
    try:
        for query in queries:
            await store.put(sha256(query), query)
    finally:
        await store.close()


# --- The Redis store is bounded ---


async def test_the_redis_store_keeps_at_most_its_entries_dropping_the_oldest_first(
    settings, redis_prefix
):
    queries = [unique_query() for _ in range(8)]

    await put_all(settings, redis_prefix, queries, apq_redis_max_entries=5)

    assert sorted(await held(redis_prefix)) == sorted(sha256(q) for q in queries[3:])


async def test_the_redis_store_keeps_at_most_its_characters_dropping_the_oldest_first(
    settings, redis_prefix
):
    queries = [unique_query() for _ in range(6)]
    bound = 3 * len(queries[0]) + 10

    await put_all(settings, redis_prefix, queries, apq_redis_max_chars=bound)

    stored = await held(redis_prefix)
    assert sum(len(query) for query in stored.values()) <= bound
    assert sorted(stored) == sorted(sha256(q) for q in queries[3:])


async def test_a_query_registered_again_counts_as_the_newest(settings, redis_prefix):
    first, *others = [unique_query() for _ in range(4)]

    await put_all(
        settings, redis_prefix, [first, *others[:2], first, others[2]], apq_redis_max_entries=3
    )

    assert sorted(await held(redis_prefix)) == sorted(
        sha256(q) for q in (first, others[1], others[2])
    )


async def test_a_query_over_the_document_size_limit_is_never_stored_in_redis(
    settings, redis_prefix
):
    long = "query Long { " + "__typename " * 10 + "}"

    await put_all(settings, redis_prefix, [long], max_document_chars=60)

    assert await held(redis_prefix) == {}


async def test_apq_redis_url_points_the_store_at_its_own_redis(settings, sources, redis_prefix):
    del sources
    async with app_client(
        settings, apq_redis_url=REDIS_URL, apq_redis_key_prefix=redis_prefix
    ) as client:
        query = unique_query()
        await post(client, query=query, sha=sha256(query))

        assert client.app.state.graphql.persisted.queries.backend == "redis"
        assert client.app.state.limiter.backend == "memory"  # REDIS_URL is unset
    assert await held(redis_prefix) == {sha256(query): query}


async def test_a_redis_value_that_is_not_utf8_is_a_miss(settings, sources, redis_prefix):
    del sources
    query = unique_query()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.set(redis_prefix + sha256(query), b"\xff\xfe query")
    finally:
        await client.aclose()
    async with app_client(settings, redis_url=REDIS_URL, apq_redis_key_prefix=redis_prefix) as c:
        missed = await post(c, sha=sha256(query))
        registered = await post(c, query=query, sha=sha256(query))

    assert_not_found(missed)
    assert body_of(registered) == {"data": {"__typename": "Query"}}
    # Redis was not taken for down: the registration reached it.
    assert await held(redis_prefix) == {sha256(query): query}


# --- The trusted list is held in memory ---


async def test_hash_only_misses_reach_the_users_database_at_most_once(client, sources, round_trips):
    del sources
    round_trips.reset()

    for _ in range(20):
        assert_not_found(await post(client, sha=sha256(unique_query())))
        assert_not_found(await post(client, documentId=f"unknown-{uuid.uuid4().hex}"))

    assert round_trips.counts["users"] <= 1


async def test_untrusted_queries_reach_the_users_database_at_most_once(
    settings, sources, round_trips
):
    await trust(sources, ("viewer-v1", TRUSTED))
    async with app_client(settings, persisted_operations="trusted") as client:
        round_trips.reset()

        refused = [await post(client, query=unique_query()) for _ in range(20)]
        trusted = [await post(client, query=TRUSTED) for _ in range(5)]

    assert {error_codes(body_of(r))[0] for r in refused} == {"PERSISTED_QUERY_NOT_IN_LIST"}
    assert [body_of(r) for r in trusted] == [{"data": {"__typename": "Query"}}] * 5
    # (This app's own start-up passes read other users collections meanwhile.)
    assert round_trips.on("persisted_operations") <= 1


async def test_an_operation_added_later_runs_once_the_list_is_read_again(settings, sources):
    async with app_client(
        settings, persisted_operations="trusted", trusted_operations_cache_seconds=0.3
    ) as client:
        before = await post(client, documentId="added-later")
        await trust(sources, ("added-later", TRUSTED))
        still_cached = await post(client, documentId="added-later")
        await asyncio.sleep(0.35)
        after = await post(client, documentId="added-later")

    assert error_codes(body_of(before)) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert error_codes(body_of(still_cached)) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert body_of(after) == {"data": {"__typename": "Query"}}


async def test_operations_beyond_the_maximum_are_not_loaded_and_a_line_says_so(
    settings, sources, caplog
):
    for n in range(3):  # one at a time: added in this order
        await trust(sources, (f"op-{n}", f"query Op{n} {{ __typename }}"))
    caplog.set_level(logging.WARNING, logger="gateway.persisted")
    async with app_client(
        settings, persisted_operations="trusted", trusted_operations_max=2
    ) as client:
        answers = [await post(client, documentId=f"op-{n}") for n in range(3)]

    assert [response.status_code for response in answers] == [200, 200, 404]
    assert any("trusted_operations_max" in r.getMessage().lower() for r in caplog.records)


# --- /readyz ---


async def test_readyz_reports_the_persisted_query_store(settings, sources, redis_prefix):
    del sources
    async with app_client(settings) as memory:
        in_memory = (await memory.get("/readyz")).json()
    async with app_client(settings, apq_redis_url=REDIS_URL) as shared:
        in_redis = (await shared.get("/readyz")).json()
    async with app_client(settings, apq_redis_url=closed_port_url()) as down:
        unreachable = await down.get("/readyz")

    assert in_memory["persistedQueries"] == {"backend": "memory"}
    assert in_redis["persistedQueries"] == {"backend": "redis", "redis": {"ok": True}}
    # APQ degrades to misses without Redis: the gateway stays ready.
    assert unreachable.status_code == 200
    assert unreachable.json()["status"] == "ready"
    report = unreachable.json()["persistedQueries"]
    assert report["backend"] == "redis"
    assert report["redis"]["ok"] is False
    assert report["redis"]["error"]
