"""Relay, from the npm registry: relay-compiler compiles the documents of `relay/` against
`schema.graphql` (a @refetchable fragment on Strategy needs `Node` and `node(id:)`), and
relay-runtime, fetching from a served gateway, merges two pages of `strategies` into one
connection and keeps it current through create, rename and delete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.clients.conftest import HERE, make_strategies, register, run_node, run_tool
from tests.helpers import ROOT
from tests.serving import Server


async def compile_relay(workdir: Path) -> Path:
    """Run relay-compiler over `relay/` against the committed schema; the artifacts' folder."""
    (workdir / "src").mkdir()
    shutil.copy(HERE / "relay" / "StrategyList.js", workdir / "src")
    shutil.copy(ROOT / "schema.graphql", workdir)
    generated = workdir / "__generated__"
    generated.mkdir()
    config = {
        "src": "./src",
        "schema": "./schema.graphql",
        "language": "javascript",
        "artifactDirectory": "./__generated__",
    }
    (workdir / "relay.config.json").write_text(json.dumps(config))
    result = await run_tool("relay-compiler", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return generated


async def test_relay_compiles_and_merges_pages_and_mutations_into_one_connection(
    served: Server, tmp_path: Path
):
    generated = await compile_relay(tmp_path)
    assert {path.name for path in generated.iterdir()} >= {
        "StrategyCardRefetchQuery.graphql.js",  # the @refetchable fragment's query, on node(id:)
        "StrategyListPaginationQuery.graphql.js",
    }
    assert "node(id: $id)" in (generated / "StrategyCardRefetchQuery.graphql.js").read_text()
    token = await register(served, "relay@example.com")
    await make_strategies(served, token, ["s1", "s2", "s3", "s4", "s5"])

    seen = await run_node("relay_pages.mjs", f"{served.base_url}/graphql", token, str(generated))

    # Newest first: the first page, then the second merged after it in the same connection.
    assert seen["firstPage"]["names"] == ["s5", "s4"]
    assert seen["merged"]["names"] == ["s5", "s4", "s3", "s2"]
    assert seen["merged"]["ids"][:2] == seen["firstPage"]["ids"]
    assert seen["merged"]["hasNextPage"] is True
    assert len(set(seen["merged"]["ids"])) == 4
    # The @refetchable fragment's query reads the strategy back through node(id:).
    assert seen["refetched"]["node"]["id"] == seen["merged"]["ids"][0]
    assert seen["refetched"]["node"]["name"] == "s5"
    # Create prepends the new node (@prependNode), rename updates it in place (the payload
    # carries the Strategy with its id), delete removes its edge (@deleteEdge on deletedId).
    assert seen["afterCreate"]["names"] == ["From Relay", "s5", "s4", "s3", "s2"]
    assert seen["afterCreate"]["ids"][0] == seen["newId"]
    assert seen["afterRename"]["names"] == ["Renamed by Relay", "s5", "s4", "s3", "s2"]
    assert seen["afterDelete"]["names"] == ["s5", "s4", "s3", "s2"]
