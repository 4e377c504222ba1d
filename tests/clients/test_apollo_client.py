"""Apollo Client 4, from the npm registry, against a running `gateway serve`."""

from __future__ import annotations

import re

from tests.clients.conftest import HERE, make_strategies, register, run_node
from tests.serving import Server


async def test_apollo_client_reads_the_viewer(served: Server):
    token = await register(served, "apollo@example.com")

    data = await run_node("smoke.mjs", f"{served.base_url}/graphql", token)

    assert data == {"me": {"__typename": "User", "email": "apollo@example.com"}}


async def test_apollo_clients_cached_list_follows_create_rename_and_delete_with_no_cache_code(
    served: Server,
):
    token = await register(served, "apollo-cache@example.com")
    await make_strategies(served, token, ["first", "second"])

    seen = await run_node("apollo_cache.mjs", f"{served.base_url}/graphql", token)

    # The cache and a component watching the list agree after every step.
    for step in ("initial", "afterCreate", "afterRename", "afterDelete"):
        assert seen[step]["rendered"] == seen[step]["cached"], step
    assert seen["initial"]["cached"] == ["second", "first"]
    assert seen["afterCreate"]["cached"] == ["From Apollo", "second", "first"]
    assert seen["afterRename"]["cached"] == ["Renamed by Apollo", "second", "first"]
    assert seen["afterDelete"]["cached"] == ["second", "first"]
    assert seen["deletedId"] == seen["createdId"]
    # The list was read once: every later state came from the mutations' answers.
    assert seen["operations"] == ["Strategies", "Create", "Rename", "Delete"]
    # Replacing the list loses nothing Apollo would warn about (the same fragment).
    assert seen["warnings"] == []


def test_the_apollo_cache_script_holds_no_cache_code():
    # What the test above proves is that the selections alone suffice: no updater may creep in.
    source = (HERE / "apollo_cache.mjs").read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))

    for cache_code in (
        "update",
        "cache.modify",
        "cache.evict",
        "refetchQueries",
        "typePolicies",
        "relayStylePagination",
        "writeQuery",
        "writeFragment",
    ):
        assert re.search(rf"\b{re.escape(cache_code)}\b\s*[(:]", code) is None, cache_code
