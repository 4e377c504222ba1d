"""Bounded work per request: at every limit the largest allowed request passes and one step
beyond is refused with its code, quickly, without asking any source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.helpers import (
    app_client,
    body_of,
    error_codes,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def post(client: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": query}, headers={"Accept": GRAPHQL_RESPONSE, **headers}
    )


def nested(levels: int) -> str:
    """A query of exactly `levels` field levels: me { strategies { edges { node { owner ..."""
    # Pages of one: the depth limit is tested here, not the cost (tests/schema/test_cost.py).
    path = ["me", "strategies(first: 1)", "edges", "node", "owner"]
    while len(path) < levels - 1:
        path += ["strategies(first: 1)", "edges", "node", "owner"]
    path = [*path[: levels - 1], "__typename"]
    return "{ " + " { ".join(path) + " }" * levels


def refused(response: httpx.Response, code: str = "QUERY_TOO_COMPLEX") -> None:
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == [code]
    assert "data" not in response.json()


def admitted(response: httpx.Response) -> None:
    codes = error_codes(response.json())
    assert "QUERY_TOO_COMPLEX" not in codes
    assert "RESPONSE_TOO_LARGE" not in codes
    assert response.status_code == 200, response.text


# --- Depth --------------------------------------------------------------------------------------


def test_the_nested_query_helper_counts_field_levels():
    assert nested(3) == "{ me { strategies(first: 1) { __typename } } }"


async def test_a_query_of_max_depth_levels_passes_and_one_more_level_is_refused(client, settings):
    depth = settings.max_query_depth

    admitted(await post(client, nested(depth)))
    refused(await post(client, nested(depth + 1)))


async def test_fragments_add_no_level_but_their_fields_do(client, settings):
    depth = settings.max_query_depth

    def through_fragments(levels: int) -> str:
        inner = nested(levels)[2:-2]  # the fields within the operation's braces
        return "{ ... on Query { ...F } } fragment F on Query { " + inner + " }"

    admitted(await post(client, through_fragments(depth)))
    refused(await post(client, through_fragments(depth + 1)))


# --- Aliases ------------------------------------------------------------------------------------


async def test_max_aliases_pass_and_one_more_is_refused(client, settings):
    most = settings.max_query_aliases

    admitted(await post(client, "{ " + " ".join(f"a{n}: __typename" for n in range(most)) + " }"))
    refused(
        await post(client, "{ " + " ".join(f"a{n}: __typename" for n in range(most + 1)) + " }")
    )


async def test_aliases_count_through_every_spread_of_a_fragment(client, settings):
    half = settings.max_query_aliases // 2
    fragment = "fragment F on Query { " + " ".join(f"a{n}: __typename" for n in range(half)) + " }"

    admitted(await post(client, "{ ...F ... on Query { ...F } } " + fragment))
    refused(await post(client, "{ ...F ... on Query { ...F } x: __typename } " + fragment))


# --- Tokens and document length -------------------------------------------------------------------


def typenames(tokens: int) -> str:
    """A document of exactly `tokens` tokens: `{ __typename }` and comments (fields
    repeated a thousand times are refused by graphql-core's overlap check first)."""
    return "{ __typename }\n" + "#\n" * (tokens - 3)


async def test_max_tokens_pass_and_one_more_is_refused(client, settings):
    most = settings.max_query_tokens

    admitted(await post(client, typenames(most)))
    response = await post(client, typenames(most + 1))
    refused(response)
    assert response.json()["errors"][0]["extensions"]["limit"] == "tokens"


async def test_comments_count_as_tokens(client, settings):
    comments = "# x\n"

    admitted(await post(client, "{ __typename }\n" + comments * (settings.max_query_tokens - 3)))
    refused(await post(client, "{ __typename }\n" + comments * (settings.max_query_tokens - 2)))


async def test_a_document_of_max_characters_passes_and_one_more_is_refused(client, settings):
    most = settings.max_document_chars
    document = "{ __typename }"
    document += " " * (most - len(document))

    admitted(await post(client, document))
    response = await post(client, document + " ")
    refused(response)
    assert response.json()["errors"][0]["extensions"]["limit"] == "documentChars"


async def test_a_legacy_json_client_gets_the_refusal_with_a_200(client, settings):
    response = await client.post(
        "/graphql", json={"query": typenames(settings.max_query_tokens + 1)}
    )

    assert response.status_code == 200
    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]


# --- Body ---------------------------------------------------------------------------------------


def json_body(size: int) -> bytes:
    """A JSON request body of exactly `size` bytes: a query padded with spaces."""
    head = b'{"query": "{ __typename }"'
    return head + b" " * (size - len(head) - 1) + b"}"


async def test_a_body_of_max_bytes_passes_and_one_more_byte_is_413(client, settings):
    most = settings.max_body_bytes
    headers = {"Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE}

    passed = await client.post("/graphql", content=json_body(most), headers=headers)
    over = await client.post("/graphql", content=json_body(most + 1), headers=headers)

    assert body_of(passed) == {"data": {"__typename": "Query"}}
    assert over.status_code == 413
    assert error_codes(over.json()) == ["BAD_USER_INPUT"]


async def test_a_streamed_body_without_length_is_cut_at_the_cap_unread(client, settings):
    sent = 0
    chunk = b" " * 65536

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"query": "{ __typename }"'
        for _ in range(1600):  # 100 MB, if it were all read
            sent += len(chunk)
            yield chunk
        yield b"}"

    response = await client.post(
        "/graphql", content=body(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert sent <= settings.max_body_bytes + 2 * len(chunk)


async def test_a_declared_100_mb_body_is_refused_before_it_is_read(client):
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"{}"

    response = await client.post(
        "/graphql",
        content=body(),
        headers={"Content-Type": "application/json", "Content-Length": str(100 * 2**20)},
    )

    assert response.status_code == 413
    assert read == 0


# --- The issue's size attacks: refused fast, no source touched -----------------------------------


async def test_the_issues_size_attacks_are_refused_fast_without_a_round_trip(
    client, sources, round_trips
):
    attacks: list[Callable[[], Any]] = [
        # 50 MB of one comment: over the body cap (and the document and token caps).
        lambda: client.post(
            "/graphql",
            content=b'{"query": "#' + b"x" * (50 * 2**20) + b'\\n{ me { id } }"}',
            headers={"Content-Type": "application/json"},
        ),
        # 100 MB body.
        lambda: client.post(
            "/graphql",
            content=b'{"query": "{ me { id } }", "x": "' + b"y" * (100 * 2**20) + b'"}',
            headers={"Content-Type": "application/json"},
        ),
        # A 10 MB document, and a 900 KB one under the body cap: over the document cap.
        lambda: post(client, "{ me { id } }" + " " * (10 * 2**20)),
        lambda: post(client, "{ me { id } }\n" + "#" + "c" * 900_000),
    ]

    # Building and sending 10 to 100 MB in-process costs the client more than the refusal;
    # the document under the body cap is the server's own work: within 100 ms.
    bounds = (1.0, 1.0, 1.0, 0.1)
    for attack, bound in zip(attacks, bounds, strict=True):
        started = time.perf_counter()
        response = await attack()
        elapsed = time.perf_counter() - started

        assert response.status_code in (400, 413), response.text[:200]
        assert error_codes(response.json()) in (["BAD_USER_INPUT"], ["QUERY_TOO_COMPLEX"])
        assert elapsed < bound, elapsed
    assert sum(round_trips.counts.values()) == 0


async def test_distinct_documents_cannot_fill_the_caches(sources, settings):
    async with app_client(settings) as client:  # an app of its own: its caches start empty
        documents = client.app.state.schema.documents
        large = settings.cache_max_document_chars + 1

        for n in range(40):  # too large to be remembered at all
            await post(client, f"{{ a{n}: __typename }}" + " " * large)
        assert documents.chars == 0

        for n in range(settings.cached_documents + 40):  # each remembered, the oldest dropped
            await post(client, f"{{ a{n}: __typename }}")
    caches = (documents._parsed, documents._validated, documents._checked, documents._costs)
    assert all(len(cache) == settings.cached_documents for cache in caches)
    assert "{ a0: __typename }" not in documents._parsed  # least recently used: gone
    # The bound the README gives: each of the four caches holds at most so many documents
    # of at most so many characters.
    assert documents.chars <= 4 * settings.cached_documents * settings.cache_max_document_chars


# --- Response size and objects -------------------------------------------------------------------


TRADES = "{ trades(first: 100) { edges { node { id } } } }"


async def test_a_response_of_max_objects_passes_and_one_more_object_is_refused(sources, settings):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy) for _ in range(10)])
    auth = f"Bearer {token_for(settings, user)}"
    # The connection, then an edge and a node per trade.
    objects = 1 + 2 * 10

    async with app_client(settings, max_response_objects=objects) as http:
        passed = await post(http, TRADES, Authorization=auth)
    async with app_client(settings, max_response_objects=objects - 1) as http:
        over = await post(http, TRADES, Authorization=auth)

    assert len(body_of(passed)["data"]["trades"]["edges"]) == 10
    assert over.status_code == 200
    assert over.json()["data"] is None
    assert error_codes(over.json()) == ["RESPONSE_TOO_LARGE"]
    assert over.json()["errors"][0]["extensions"]["limit"] == "objects"


async def test_a_response_of_max_bytes_passes_and_one_more_byte_is_refused(sources, settings):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy) for _ in range(10)])
    auth = f"Bearer {token_for(settings, user)}"
    async with app_client(settings) as http:
        size = len((await post(http, TRADES, Authorization=auth)).content)

    async with app_client(settings, max_response_bytes=size) as http:
        passed = await post(http, TRADES, Authorization=auth)
    async with app_client(settings, max_response_bytes=size - 1) as http:
        over = await post(http, TRADES, Authorization=auth)

    assert len(body_of(passed)["data"]["trades"]["edges"]) == 10
    assert over.json()["data"] is None
    assert error_codes(over.json()) == ["RESPONSE_TOO_LARGE"]
    assert len(over.content) < size


async def test_a_response_growing_past_its_bytes_stops_during_execution(sources, settings):
    user = await make_user(sources)
    await make_strategy(sources, user, code="x" * 200_000)
    query = "{ strategies { edges { node { code } } } }"

    async with app_client(settings, max_response_bytes=100_000) as http:
        response = await post(http, query, Authorization=f"Bearer {token_for(settings, user)}")

    assert error_codes(response.json()) == ["RESPONSE_TOO_LARGE"]
    assert len(response.content) < 1000


WORST = (
    "{ trades(first: 100) { edges { node { strategy { trades(first: 100) { edges { node {"
    " strategy { trades(first: 100) { edges { node { id } } } } } } } } } } } }"
)


async def test_the_issues_million_ids_query_stops_at_the_object_cap(sources, settings):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy) for _ in range(100)])

    # The cost limit refuses it before it runs (tests/schema/test_cost.py); with no cost
    # limit, the object cap still stops it.
    async with app_client(settings, max_query_cost=10**9) as client:
        started = time.perf_counter()
        response = await post(client, WORST, Authorization=f"Bearer {token_for(settings, user)}")

    assert error_codes(response.json()) == ["RESPONSE_TOO_LARGE"]
    assert time.perf_counter() - started < 5
    assert len(response.content) < 1000


# The dearest query the default budget admits (cost 4,801 of 5,000): 100 trades, each with
# its strategy and 22 of that strategy's trades.
WORST_ALLOWED = (
    "{ trades(first: 100) { edges { node { id strategy { trades(first: 22) { edges { node {"
    " id } } } } } } } }"
)


async def test_healthz_answers_within_100_ms_while_the_worst_allowed_request_runs(
    app, sources, settings
):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy) for _ in range(100)])
    auth = f"Bearer {token_for(settings, user)}"
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as attacker,
        httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as prober,
    ):
        worst = asyncio.ensure_future(post(attacker, WORST_ALLOWED, Authorization=auth))
        latencies = []
        while not worst.done():
            started = time.perf_counter()
            assert (await prober.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)
        response = await worst

    body = response.json()
    assert "errors" not in body, body.get("errors")
    assert body["extensions"]["cost"]["requested"] <= body["extensions"]["cost"]["budget"]
    assert latencies
    assert max(latencies) < 0.1, latencies
    print(f"{len(latencies)} probes, slowest {max(latencies) * 1000:.1f} ms")  # noqa: T201


@pytest.mark.parametrize("query", ["{ me { id } }", "{ dashboard { user { id } } }"])
async def test_ordinary_queries_report_no_limit(client, sources, settings, query):
    user = await make_user(sources)

    response = await post(client, query, Authorization=f"Bearer {token_for(settings, user)}")

    admitted(response)


async def test_a_document_too_broken_to_validate_whole_is_too_complex(client):
    response = await post(client, "{ " + " ".join(["nope"] * 150) + " }")

    codes = error_codes(response.json())
    assert response.status_code == 400
    assert codes[-1] == "QUERY_TOO_COMPLEX"  # graphql-core stopped at its error limit
