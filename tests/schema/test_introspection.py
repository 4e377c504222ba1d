"""The standard introspection query, as tools send it, answered over HTTP: it rebuilds the
committed schema (`schema.graphql`)."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    REMOVE,
    DirectiveDefinitionNode,
    DirectiveNode,
    DocumentNode,
    Visitor,
    build_client_schema,
    get_introspection_query,
    parse,
    print_ast,
    print_schema,
    visit,
)

from tests.helpers import gql

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"
# What GraphiQL, graphql-codegen and gql ask: every optional part of the query.
INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
)


class _LessApplied(Visitor):
    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names

    def enter_directive(self, node: DirectiveNode, *_args: object) -> object:
        return REMOVE if node.name.value in self.names else None


def _definitions(document: DocumentNode, *, applied: frozenset[str]) -> list[str]:
    """Each definition of an SDL document printed alone, in name order, less where the
    schema's own directives (`@cost`, `@listSize`) are applied: introspection carries a
    directive's definition, never where it is applied."""
    stripped = visit(document, _LessApplied(applied))
    return sorted(print_ast(definition) for definition in stripped.definitions)


async def test_the_standard_introspection_query_answers_without_errors(client):
    body = await gql(client, INTROSPECTION)

    assert "errors" not in body, body["errors"]
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_the_introspected_schema_is_the_committed_schema(client):
    body = await gql(client, INTROSPECTION)

    rebuilt = parse(print_schema(build_client_schema(body["data"])))
    committed = parse(SCHEMA_FILE.read_text())
    own = frozenset(
        definition.name.value
        for definition in committed.definitions
        if isinstance(definition, DirectiveDefinitionNode)
    )
    assert _definitions(rebuilt, applied=own) == _definitions(committed, applied=own)


async def test_the_empty_object_default_of_config_is_introspected(client):
    body = await gql(
        client,
        '{ __type(name: "CreateStrategyInput") { inputFields { name defaultValue } } }',
    )

    assert "errors" not in body, body["errors"]
    defaults = {
        field["name"]: field["defaultValue"] for field in body["data"]["__type"]["inputFields"]
    }
    assert parse(f"{{ f(a: {defaults['config']}) }}") is not None
    assert defaults["config"].replace(" ", "") == "{}"
    assert defaults["environment"] == "TESTNET"
    assert defaults["autoReconnect"] == "false"
