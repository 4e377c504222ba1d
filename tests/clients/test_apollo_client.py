"""Apollo Client 4, from the npm registry, against a running `gateway serve`."""

from __future__ import annotations

from tests.clients.conftest import make_strategies, register, run_node
from tests.serving import Server


async def test_apollo_client_reads_the_viewer(served: Server):
    token = await register(served, "apollo@example.com")

    data = await run_node("smoke.mjs", f"{served.base_url}/graphql", token)

    assert data == {"me": {"__typename": "User", "email": "apollo@example.com"}}


async def test_apollo_clients_cached_list_follows_create_rename_and_delete(served: Server):
    token = await register(served, "apollo-cache@example.com")
    await make_strategies(served, token, ["first", "second"])

    seen = await run_node("apollo_cache.mjs", f"{served.base_url}/graphql", token)

    assert seen["initial"] == ["second", "first"]
    assert seen["afterCreate"] == ["From Apollo", "second", "first"]
    assert seen["afterRename"] == ["Renamed by Apollo", "second", "first"]
    assert seen["afterDelete"] == ["second", "first"]
    # The list was read once: every later state came from the mutations' payloads.
    assert seen["operations"] == ["Strategies", "Create", "Rename", "Delete"]
