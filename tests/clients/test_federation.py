"""The gateway as a subgraph of a real supergraph (tests/clients/federation.mjs): composed
with @apollo/composition beside a second subgraph, served by Apollo Gateway and Hive
Gateway, queried across both subgraphs in both directions with the viewer's token
forwarded; our side receives one `_entities` request per query plan step, however many
references it carries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.settings import Settings
from tests.clients.conftest import make_strategies, register, run_node
from tests.serving import Server, free_port, settings_env, start_serve, stop, wait_until_healthy

COUNTS = [3, 30]
EMAIL = "federated@example.com"


@pytest.fixture
async def subgraph(
    settings: Settings, sources: Any, tmp_path: Path, node_modules: Path
) -> AsyncIterator[Server]:
    """`gateway serve` with FEDERATION=true against this run's (emptied) databases."""
    del sources, node_modules
    server = start_serve(free_port(), {**settings_env(settings), "FEDERATION": "true"}, tmp_path)
    try:
        await wait_until_healthy(server)
        yield server
    finally:
        stop(server.process)


async def strategy_ids(server: Server, token: str) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ strategies(first: 50) { edges { node { id } } } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    return [edge["node"]["id"] for edge in response.json()["data"]["strategies"]["edges"]]


async def test_apollo_gateway_and_hive_gateway_query_across_our_subgraph_in_both_directions(
    subgraph: Server,
):
    token = await register(subgraph, EMAIL)
    names = [f"s{i:02d}" for i in range(max(COUNTS))]
    await make_strategies(subgraph, token, names)
    ids = await strategy_ids(subgraph, token)

    # In a thread: the event loop keeps serving the suite's database clients meanwhile.
    report = await run_node(
        "federation.mjs",
        env={
            "GATEWAY_URL": subgraph.base_url,
            "TOKEN": token,
            "STRATEGY_IDS": json.dumps(ids),
            "COUNTS": json.dumps(COUNTS),
        },
    )

    # Composed without an error or a hint; the second subgraph's PageInfo composes with ours
    # because both are @shareable (composition refuses it when ours is not).
    assert report["composition"] == {"errors": [], "hints": []}
    assert "INVALID_FIELD_SHARING" in report["withoutShareable"]

    # Newest first: the last created is listed first.
    by_name = dict(zip(ids, names[::-1], strict=True))
    for router in ("apollo", "hive"):
        for count in COUNTS:
            answer = report[router]["featured"][str(count)]
            assert "errors" not in answer["body"], (router, answer["body"])
            featured = answer["body"]["data"]["featured"]
            # Their root field -> our Strategy fields (and back to their field on our User).
            assert [(s["id"], s["name"], s["rating"]) for s in featured] == [
                (strategy_id, by_name[strategy_id], i + 1)
                for i, strategy_id in enumerate(ids[:count])
            ], router
            assert {(s["owner"]["email"], tuple(s["owner"]["badges"])) for s in featured} == {
                (EMAIL, ("early-adopter",))
            }
            # One `_entities` request for all the references, 3 as 30, with the viewer's token.
            assert answer["ours"] == [
                {"entities": True, "representations": count, "authorization": True}
            ], (router, count)

        # Our root field -> their fields on our User and Strategy.
        mine = report[router]["mine"]
        assert "errors" not in mine["body"], (router, mine["body"])
        me = mine["body"]["data"]["me"]
        assert (me["email"], me["badges"]) == (EMAIL, ["early-adopter"])
        ratings = {e["node"]["id"]: e["node"]["rating"] for e in me["strategies"]["edges"]}
        assert ratings == {strategy_id: i + 1 for i, strategy_id in enumerate(ids)}
        assert mine["ours"] == [
            {"entities": False, "representations": None, "authorization": True}
        ], router
