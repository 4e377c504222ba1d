"""Apollo Client 4, from the npm registry, against a running `gateway serve`."""

from __future__ import annotations

from tests.clients.conftest import register, run_node
from tests.serving import Server


async def test_apollo_client_reads_the_viewer(served: Server):
    token = await register(served, "apollo@example.com")

    data = run_node("smoke.mjs", f"{served.base_url}/graphql", token)

    assert data == {"me": {"__typename": "User", "email": "apollo@example.com"}}
