"""Apollo Client 4's PersistedQueryLink against a served gateway: the miss, the fallback
that registers the query, and the hit (tests/clients/apq.mjs records every request)."""

from __future__ import annotations

import re

from tests.clients.conftest import register, run_node
from tests.serving import Server


async def test_apollo_persisted_query_link_misses_falls_back_and_then_hits(served: Server):
    token = await register(served, "apq@example.com")

    result = await run_node("apq.mjs", f"{served.base_url}/graphql", token)

    viewer = {"me": {"__typename": "User", "email": "apq@example.com"}}
    assert result["first"] == viewer
    assert result["second"] == viewer
    requests = result["requests"]
    hashes = {request.pop("hash") for request in requests}
    assert len(hashes) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", hashes.pop())
    assert requests == [
        # The first client: its hash alone, by GET, is unknown...
        {
            "method": "GET",
            "status": 200,
            "sentQuery": False,
            "codes": ["PERSISTED_QUERY_NOT_FOUND"],
            "data": None,
        },
        # ...so it sends the query with its hash, by POST, which runs and registers it.
        {"method": "POST", "status": 200, "sentQuery": True, "codes": [], "data": viewer},
        # The second client's hash alone is enough.
        {"method": "GET", "status": 200, "sentQuery": False, "codes": [], "data": viewer},
    ]
