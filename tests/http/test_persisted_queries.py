"""Persisted operations over HTTP, in-process: Apollo's automatic persisted queries (in
memory, in a shared Redis, with Redis down) and trusted operations (README, "Persisted
operations")."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from datasources.persisted_operations import PersistedOperation, save_operations
from gateway.core.errors import GatewayError
from gateway.http import _PERSISTED_ANSWERS
from tests.helpers import AppClient, app_client, body_of, error_codes
from tests.unit.test_ratelimit import REDIS_URL, closed_port_url, delete_prefix

QUERY = "query Viewer { __typename }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def unique_query() -> str:
    """A query no store has seen: each test's own, so none leans on another's store."""
    return f"query Probe{uuid.uuid4().hex[:12]} {{ __typename }}"


def persisted(sha: str, version: Any = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha}}


async def post(client, *, query: str | None = None, sha: str | None = None, **extra: Any):
    body: dict[str, Any] = {**extra}
    if query is not None:
        body["query"] = query
    if sha is not None:
        body["extensions"] = persisted(sha)
    return await client.post("/graphql", json=body)


async def get(client, *, sha: str, query: str | None = None):
    params = {"extensions": json.dumps(persisted(sha))}
    if query is not None:
        params["query"] = query
    return await client.get("/graphql", params=params)


def assert_not_found(response) -> None:
    body = body_of(response)
    # As Apollo Server answers it: 200, uncacheable, the message Apollo's clients look for.
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-cache, must-revalidate"
    assert body == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }


# --- Automatic persisted queries, in memory ---


async def test_a_hash_only_post_of_an_unknown_query_answers_persisted_query_not_found(client):
    assert_not_found(await post(client, sha=sha256(unique_query())))


async def test_a_hash_only_get_of_an_unknown_query_answers_persisted_query_not_found(client):
    assert_not_found(await get(client, sha=sha256(unique_query())))


async def test_a_query_sent_with_its_hash_runs_and_is_then_answered_from_its_hash(client):
    query = unique_query()

    registered = await post(client, query=query, sha=sha256(query))
    by_post = await post(client, sha=sha256(query))
    by_get = await get(client, sha=sha256(query))

    for response in (registered, by_post, by_get):
        assert response.status_code == 200
        assert body_of(response) == {"data": {"__typename": "Query"}}


async def test_a_query_registered_by_get_is_answered_by_post(client):
    query = unique_query()

    registered = await get(client, sha=sha256(query), query=query)
    by_post = await post(client, sha=sha256(query))

    assert body_of(registered) == {"data": {"__typename": "Query"}}
    assert body_of(by_post) == {"data": {"__typename": "Query"}}


async def test_a_hash_that_is_not_the_querys_is_refused_and_nothing_is_stored(client):
    query, other = unique_query(), unique_query()

    refused = await post(client, query=query, sha=sha256(other))
    under_the_wrong_hash = await post(client, sha=sha256(other))
    under_its_own_hash = await post(client, sha=sha256(query))

    assert refused.status_code == 400
    assert error_codes(body_of(refused)) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert "data" not in body_of(refused)
    assert_not_found(under_the_wrong_hash)
    assert_not_found(under_its_own_hash)


@pytest.mark.parametrize("version", [2, 0, "1", None])
async def test_a_persisted_query_version_other_than_1_is_refused(client, version):
    query = unique_query()

    response = await client.post(
        "/graphql", json={"query": query, "extensions": persisted(sha256(query), version)}
    )

    assert response.status_code == 400
    body = body_of(response)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "persistedQuery.version"
    assert_not_found(await post(client, sha=sha256(query)))


async def test_a_malformed_persisted_query_extension_is_refused(client):
    response = await client.post(
        "/graphql", json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": 7}}}
    )

    assert response.status_code == 400
    assert error_codes(body_of(response)) == ["BAD_USER_INPUT"]


async def test_a_query_that_fails_validation_is_not_stored(client):
    query = f"query Bad{uuid.uuid4().hex[:8]} {{ noSuchField }}"

    first = await post(client, query=query, sha=sha256(query))
    again = await post(client, sha=sha256(query))

    assert error_codes(body_of(first)) == ["BAD_USER_INPUT"]  # a validation error
    assert_not_found(again)


async def test_a_hash_only_get_of_a_stored_mutation_is_refused_405(client):
    mutation = f'mutation M{uuid.uuid4().hex[:8]} {{ logout(refreshToken: "x") }}'
    await post(client, query=mutation, sha=sha256(mutation))

    response = await get(client, sha=sha256(mutation))

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_a_document_over_the_size_limit_is_refused_before_it_is_stored(settings, sources):
    del sources
    async with app_client(settings, max_document_chars=60) as client:
        query = "query Long { " + "__typename " * 10 + "}"

        refused = await post(client, query=query, sha=sha256(query))
        again = await post(client, sha=sha256(query))

        assert error_codes(body_of(refused)) == ["QUERY_TOO_COMPLEX"]
        assert_not_found(again)


async def test_the_memory_store_keeps_at_most_its_entries(settings, sources):
    del sources
    async with app_client(settings, apq_cache_entries=2) as client:
        first, second, third = unique_query(), unique_query(), unique_query()
        for query in (first, second, third):
            await post(client, query=query, sha=sha256(query))

        assert_not_found(await post(client, sha=sha256(first)))
        assert body_of(await post(client, sha=sha256(third))) == {"data": {"__typename": "Query"}}
        assert len(client.app.state.graphql.persisted.queries.memory) == 2


async def test_with_persisted_operations_off_a_hash_is_answered_not_supported(settings, sources):
    del sources
    async with app_client(settings, persisted_operations="off") as client:
        query = unique_query()

        with_query = await post(client, query=query, sha=sha256(query))
        plain = await post(client, query=query)

    assert with_query.status_code == 200
    assert body_of(with_query) == {
        "errors": [
            {
                "message": "PersistedQueryNotSupported",
                "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
            }
        ]
    }
    assert body_of(plain) == {"data": {"__typename": "Query"}}


# --- Shared through Redis ---


@pytest.fixture
async def redis_prefix():
    prefix = f"gw:test:apq:{uuid.uuid4().hex[:8]}:"
    yield prefix
    await delete_prefix(prefix)


async def test_two_apps_on_one_redis_share_their_persisted_queries(settings, sources, redis_prefix):
    del sources
    shared = {"redis_url": REDIS_URL, "apq_redis_key_prefix": redis_prefix}
    async with app_client(settings, **shared) as first, app_client(settings, **shared) as second:
        query = unique_query()

        missed = await post(second, sha=sha256(query))
        registered = await post(first, query=query, sha=sha256(query))
        hit = await get(second, sha=sha256(query))

        assert second.app.state.graphql.persisted.queries.backend == "redis"
    assert_not_found(missed)
    assert body_of(registered) == {"data": {"__typename": "Query"}}
    assert body_of(hit) == {"data": {"__typename": "Query"}}


async def test_a_shared_persisted_query_passes_the_limits_of_the_app_that_runs_it(
    settings, sources, redis_prefix
):
    del sources
    shared = {"redis_url": REDIS_URL, "apq_redis_key_prefix": redis_prefix}
    deep = "query Deep { me { strategies(first: 1) { edges { node { id } } } } }"
    async with (
        app_client(settings, **shared) as lenient,
        app_client(settings, **shared, max_query_depth=3) as strict,
    ):
        registered = await post(lenient, query=deep, sha=sha256(deep))
        refused = await post(strict, sha=sha256(deep))

    assert error_codes(body_of(registered)) == ["UNAUTHENTICATED"]  # it ran
    assert error_codes(body_of(refused)) == ["QUERY_TOO_COMPLEX"]
    assert "data" not in body_of(refused)


async def test_a_redis_entry_that_is_not_its_hashs_query_is_never_run(
    settings, sources, redis_prefix
):
    import redis.asyncio as aioredis  # noqa: PLC0415

    del sources
    forged = unique_query()
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        await redis.set(redis_prefix + sha256(forged), "query Other { __typename }")
    finally:
        await redis.aclose()
    async with app_client(settings, redis_url=REDIS_URL, apq_redis_key_prefix=redis_prefix) as c:
        assert_not_found(await post(c, sha=sha256(forged)))


async def test_with_redis_down_requests_carrying_their_query_still_run(settings, sources):
    del sources
    async with app_client(settings, redis_url=closed_port_url()) as client:
        query = unique_query()

        missed = await post(client, sha=sha256(query))
        with_query = await post(client, query=query, sha=sha256(query))
        plain = await post(client, query=query)
        # What this process registered, it still holds in its own memory.
        from_memory = await post(client, sha=sha256(query))

    assert_not_found(missed)
    for response in (with_query, plain, from_memory):
        assert response.status_code == 200
        assert body_of(response) == {"data": {"__typename": "Query"}}


# --- Trusted operations ---

TRUSTED = "query TrustedViewer { __typename }"
UNTRUSTED = "query Untrusted { __typename }"


async def trust(sources, *operations: tuple[str, str]) -> None:
    result = await save_operations(
        db=sources.users.db,
        operations=[
            PersistedOperation(id=op_id, sha256=sha256(body), body=body)
            for op_id, body in operations
        ],
    )
    assert not result.conflicts


@pytest.fixture
async def trusted_only(settings, sources) -> AsyncIterator[AppClient]:
    await trust(sources, ("viewer-v1", TRUSTED))
    async with app_client(settings, persisted_operations="trusted") as client:
        yield client


async def test_trusted_only_runs_a_trusted_operation_by_its_id(trusted_only):
    by_extension = await post(trusted_only, sha="viewer-v1")
    by_document_id = await post(trusted_only, documentId="viewer-v1")

    assert body_of(by_extension) == {"data": {"__typename": "Query"}}
    assert body_of(by_document_id) == {"data": {"__typename": "Query"}}


async def test_trusted_only_runs_a_trusted_operation_by_the_hash_of_its_body(trusted_only):
    by_hash = await get(trusted_only, sha=sha256(TRUSTED))
    full_query = await post(trusted_only, query=TRUSTED)
    full_query_and_hash = await post(trusted_only, query=TRUSTED, sha=sha256(TRUSTED))

    for response in (by_hash, full_query, full_query_and_hash):
        assert body_of(response) == {"data": {"__typename": "Query"}}


async def test_trusted_only_refuses_any_other_document_before_parsing_it(trusted_only):
    other = await post(trusted_only, query=UNTRUSTED)
    with_its_hash = await post(trusted_only, query=UNTRUSTED, sha=sha256(UNTRUSTED))
    unparsable = await post(trusted_only, query="{ this does not parse")
    introspection = await post(trusted_only, query="{ __schema { types { name } } }")

    for response in (other, with_its_hash, unparsable, introspection):
        assert response.status_code == 403
        assert error_codes(body_of(response)) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        assert "data" not in body_of(response)
    # Nothing was registered on the way: the hash is still unknown.
    assert error_codes(body_of(await post(trusted_only, sha=sha256(UNTRUSTED)))) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


async def test_trusted_only_answers_an_unknown_id_not_found_404(trusted_only):
    response = await post(trusted_only, documentId="no-such-operation")

    assert response.status_code == 404
    assert error_codes(body_of(response)) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_trusted_only_still_checks_a_hash_against_its_query(trusted_only):
    response = await post(trusted_only, query=TRUSTED, sha=sha256(UNTRUSTED))

    assert response.status_code == 400
    assert error_codes(body_of(response)) == ["PERSISTED_QUERY_HASH_MISMATCH"]


async def test_a_trusted_operation_still_passes_every_limit(settings, sources):
    deep = "query DeepTrusted { me { strategies(first: 1) { edges { node { id } } } } }"
    await trust(sources, ("deep", deep))
    async with app_client(settings, persisted_operations="trusted", max_query_depth=3) as client:
        response = await post(client, documentId="deep")

    assert error_codes(body_of(response)) == ["QUERY_TOO_COMPLEX"]


async def test_trusted_operations_answer_by_id_with_apq_too(settings, sources):
    await trust(sources, ("apq-and-trusted", TRUSTED))
    # An app of its own: the shared one may hold a list read before this operation existed.
    async with app_client(settings) as client:
        response = await post(client, sha="apq-and-trusted")

    assert body_of(response) == {"data": {"__typename": "Query"}}


async def test_trusted_only_with_its_database_down_answers_source_unavailable(settings, sources):
    del sources
    port = closed_port_url().removeprefix("redis://127.0.0.1:").removesuffix("/0")
    down = f"mongodb://127.0.0.1:{port}/nobody_db"
    async with app_client(
        settings,
        persisted_operations="trusted",
        mongo_user_uri=down,
        source_lookup_timeout_seconds=0.3,
    ) as client:
        response = await post(client, documentId="viewer-v1")

    assert response.status_code == 503
    assert error_codes(body_of(response)) == ["SOURCE_UNAVAILABLE"]


# --- By structure ---


def test_every_persisted_query_error_has_its_http_answer():
    def subclasses(cls: type[GatewayError]) -> list[type[GatewayError]]:
        return [s for c in cls.__subclasses__() for s in (c, *subclasses(c))]

    persisted_errors = [
        cls
        for cls in subclasses(GatewayError)
        if cls.code.startswith("PERSISTED_QUERY_") and cls.__module__.startswith("gateway")
    ]

    assert len(persisted_errors) >= 4
    assert [cls for cls in persisted_errors if cls not in _PERSISTED_ANSWERS] == []
