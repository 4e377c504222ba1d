"""Every GraphQL example of the README is valid against the schema, so a change of the schema
that breaks one (a field moved into a payload, say) fails here until the README follows."""

from __future__ import annotations

import re

import pytest
from graphql import (
    ExecutableDefinitionNode,
    GraphQLError,
    LoneAnonymousOperationRule,
    parse,
    specified_rules,
    validate,
)

from schema import build_schema
from tests.helpers import ROOT

SCHEMA = build_schema()._schema
BLOCKS = re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
# Client-side directives: relay-compiler reads them, the server never sees them.
RELAY_DIRECTIVES = {
    "appendNode",
    "prependNode",
    "appendEdge",
    "prependEdge",
    "deleteEdge",
    "deleteRecord",
    "connection",
    "refetchable",
    "argumentDefinitions",
    "arguments",
}
# A block lists several examples side by side, anonymous ones among them.
RULES = [rule for rule in specified_rules if rule is not LoneAnonymousOperationRule]


def _is_relay_directive(error: GraphQLError) -> bool:
    found = re.fullmatch(r"Unknown directive '@(\w+)'\.", error.message)
    return found is not None and found.group(1) in RELAY_DIRECTIVES


def test_the_readme_has_graphql_examples():
    assert any("createStrategy" in block for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.strip().splitlines()[0][:50] for b in BLOCKS])
def test_every_readme_example_is_valid_against_the_schema(block: str):
    document = parse(block)  # every block parses, the SDL ones (federation, stitching) too
    if not any(isinstance(node, ExecutableDefinitionNode) for node in document.definitions):
        return  # schema text (a subgraph's types, a merge query's signature), not a request
    errors = validate(SCHEMA, document, RULES)

    assert [e.message for e in errors if not _is_relay_directive(e)] == []
