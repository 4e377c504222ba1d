"""GraphQL Tools schema stitching (`@graphql-tools/stitch`, from the npm registry) over a
running `gateway serve`: our live schema, introspected over HTTP, merged with a second local
schema through the merge queries, one batched call per merge step."""

from __future__ import annotations

import json

import httpx

from tests.clients.conftest import make_strategies, register, run_node
from tests.http.test_observability import sample
from tests.serving import Server

STRATEGY_IDS = "{ strategies { edges { node { id name } } } }"


async def strategies_of(server: Server, token: str) -> dict[str, str]:
    """The viewer's strategies, newest first: global id -> name."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        response = await http.post(
            "/graphql",
            json={"query": STRATEGY_IDS},
            headers={"Authorization": f"Bearer {token}"},
        )
    edges = response.json()["data"]["strategies"]["edges"]
    return {edge["node"]["id"]: edge["node"]["name"] for edge in edges}


async def scrape(server: Server) -> str:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        return (await http.get("/metrics")).text


async def test_a_stitched_schema_merges_strategy_through_strategies_by_ids_in_one_call(
    served: Server,
):
    token = await register(served, "stitching@example.com")
    await make_strategies(served, token, ["alpha", "beta", "gamma", "delta", "epsilon"])
    mine = await strategies_of(served, token)
    other = await register(served, "someone-else@example.com")
    await make_strategies(served, other, ["theirs"])
    (theirs,) = await strategies_of(served, other)
    # topStrategies names four of them, in an order of its own, and another user's.
    top = [*list(mine)[::-1][:4], theirs]
    scores = {strategy_id: 10 * (index + 1) for index, strategy_id in enumerate(top)}
    before = await scrape(served)

    out = await run_node("stitching.mjs", f"{served.base_url}/graphql", token, json.dumps(scores))
    after = await scrape(served)

    result, calls = out["result"], out["calls"]
    assert result["data"]["topStrategies"] == [
        *(
            {"id": sid, "name": mine[sid], "status": "STOPPED", "riskScore": scores[sid]}
            for sid in top[:4]
        ),
        None,  # another user's: our side answered null, so nothing of it shows
    ]
    assert [error["path"] for error in result["errors"]] == [["topStrategies", 4, "name"]]
    listed = [edge["node"] for edge in result["data"]["me"]["strategies"]["edges"]]
    assert listed == [
        {"id": sid, "name": name, "riskScore": scores.get(sid)} for sid, name in mine.items()
    ]
    # Our gateway: the `me` root call, and one merge call for all of topStrategies' ids,
    # with the viewer's token forwarded (else `me` would be UNAUTHENTICATED).
    # The two sides' root fields run concurrently, so the calls may come in either order.
    gateway = {call["fields"][0]: call for call in calls["gateway"]}
    assert sorted(call["fields"] for call in calls["gateway"]) == [["me"], ["strategiesByIds"]]
    assert gateway["strategiesByIds"]["variables"] == {"ids": top}
    # The local schema: its root field, and one merge call for all of `me`'s strategies.
    local = {call["fields"][0]: call for call in calls["local"]}
    assert sorted(call["fields"] for call in calls["local"]) == [
        ["riskByStrategyIds"],
        ["topStrategies"],
    ]
    assert local["riskByStrategyIds"]["ids"] == list(mine)
    # On the gateway's side: two requests of the operation, and the strategies read in one
    # batch of the five ids.
    requests = {"operation": "Crossing", "outcome": "ok"}
    name = "gateway_requests_total"
    assert sample(after, name, **requests) - sample(before, name, **requests) == 2
    batches = {"source": "strategies", "loader": "by_id"}
    for name, delta in (("count", 1), ("sum", len(top))):
        metric = f"gateway_dataloader_batch_size_{name}"
        assert sample(after, metric, **batches) - sample(before, metric, **batches) == delta
