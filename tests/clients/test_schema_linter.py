"""graphql-schema-linter, with its default rules, over the committed schema (which
tests/cli/test_cli.py keeps equal to `gateway schema print`, and
tests/schema/test_introspection.py to what a served gateway introspects as)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clients.conftest import run_tool

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"


async def test_the_schema_passes_graphql_schema_linters_default_rules(node_modules):
    del node_modules
    linted = await run_tool("graphql-schema-linter", "--format", "json", str(SCHEMA_FILE))

    report = json.loads(linted.stdout)
    assert report["errors"] == []
    assert linted.returncode == 0, linted.stderr
