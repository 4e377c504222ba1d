"""The execution fast path (schema/_fast.py) answers exactly as the standard executor does.

The standard executor is the oracle: every query of the README and of the fuzz corpus runs
through both, as the demo user, another user and the admin, over HTTP, and the answers
(data and errors) must be the same JSON. A spy shows the fast path really served the
plain leaves, so this test cannot pass with it switched off.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import strawberry
from graphql import (
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    OperationDefinitionNode,
    OperationType,
    parse,
    type_from_ast,
)
from strawberry import relay
from strawberry.extensions import FieldExtension
from strawberry.types.base import get_object_definition

from datasources import Sources
from datasources.users import find_user_by_email
from gateway.core.settings import Settings
from gateway.seed import ADMIN_EMAIL, DEMO_EMAIL, OTHER_USERS, seed_demo
from schema import GatewaySchema
from schema._bounds import Limits, bounded_executor
from schema._fast import fast_executor, plain_leaves
from tests.helpers import ROOT, refresh_analytics, suite_box, token_for
from tests.schema.test_fuzz import EXAMPLES, generated_documents

README = (ROOT / "README.md").read_text()
# The README's examples: its GraphQL blocks and its inline queries (`{ dashboard { ... } }`).
README_BLOCKS = re.findall(r"```graphql\n(.*?)```", README, re.S) + re.findall(
    r"`(\{ [^`]+\})`", README
)
# A large answer, every field of a trade (the bench's shape, issue 11).
LARGE = """query Large { strategies(first: 30) { edges { cursor node { id name status
  trades(first: 10) { pageInfo { hasNextPage endCursor } edges { cursor node {
    id strategyId strategyName instrument side quantity entryPrice exitPrice entryTime
    exitTime pnl netPnl fees status broker environment } } } } } } }"""


def _queries(blocks: list[str]) -> list[tuple[str, str | None]]:
    """(document, operation name) of every query operation in `blocks`."""
    found = []
    for block in blocks:
        try:
            document = parse(block)
        except GraphQLError:  # an inline span that is not a query
            continue
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        for operation in operations:
            if operation.operation is OperationType.QUERY:
                name = operation.name.value if operation.name else None
                if name is not None or len(operations) == 1:
                    found.append((block, name))
    return found


def _variables(schema: GatewaySchema, document: str, name: str | None, ids: dict[str, str]):
    """Values for the operation's variables: real ids for ids, small values for the rest."""
    values: dict[str, Any] = {}
    for operation in parse(document).definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        if name is not None and (operation.name is None or operation.name.value != name):
            continue
        for definition in operation.variable_definitions or ():
            type_: Any = type_from_ast(schema._schema, definition.type)
            while isinstance(type_, GraphQLNonNull | GraphQLList):
                type_ = type_.of_type
            variable = definition.variable.name.value
            samples = {"ID": ids.get(variable, ids["id"]), "Int": 3, "String": "BTCUSDT"}
            if type_ is not None and type_.name in samples:
                values[variable] = samples[type_.name]
    return values


def _steady(value: Any) -> Any:
    """`value` without what differs between two runs of one query: measured latencies."""
    if isinstance(value, dict):
        return {k: None if k == "latencyMs" else _steady(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_steady(item) for item in value]
    return value


def _answer(response: httpx.Response) -> Any:
    body = response.json()
    if isinstance(body, dict):
        body.pop("extensions", None)  # the request id differs
    return response.status_code, _steady(body)


@pytest.fixture
async def seeded(sources: Sources, settings: Settings) -> dict[str, str]:
    """The demo dataset (with trades, activity and analytics): a token per user kind."""
    await seed_demo(sources, trades_per_strategy=12, box=suite_box())
    await refresh_analytics(sources)
    tokens = {}
    for kind, email in (("demo", DEMO_EMAIL), ("other", OTHER_USERS[0][0]), ("admin", ADMIN_EMAIL)):
        user = await find_user_by_email(db=sources.users.db, email=email)
        assert user is not None
        tokens[kind] = token_for(settings, user)
    return tokens


async def test_the_fast_path_answers_as_the_standard_executor(
    app, client: httpx.AsyncClient, seeded: dict[str, str], monkeypatch
):
    schema: GatewaySchema = app.state.schema
    fast, standard = schema.execution_context_class, schema.standard_executor
    assert fast is not standard
    # An id of each kind the queries take, from the demo user's own data.
    first = await client.post(
        "/graphql",
        json={"query": "{ strategies(first: 1) { edges { node { id } } } }"},
        headers={"Authorization": f"Bearer {seeded['demo']}"},
    )
    strategy_id = first.json()["data"]["strategies"]["edges"][0]["node"]["id"]
    ids = {"id": strategy_id, "strategyId": strategy_id}

    documents = _queries([*README_BLOCKS, LARGE])
    assert len(documents) >= 6
    fuzzed = _queries(generated_documents(schema.as_str(), EXAMPLES))
    assert len(fuzzed) >= EXAMPLES // 4
    compared = 0
    for document, name in documents + fuzzed:
        variables = _variables(schema, document, name, ids)
        for kind, token in seeded.items():
            answers = []
            for executor in (fast, standard):
                monkeypatch.setattr(schema, "execution_context_class", executor)
                response = await client.post(
                    "/graphql",
                    json={"query": document, "operationName": name, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                answers.append(_answer(response))
            assert answers[0] == answers[1], (kind, name, document)
            compared += answers[0][1].get("data") is not None
    assert compared >= len(documents)  # most of them answered data, not only errors


async def test_the_fast_path_serves_plain_leaves_and_nothing_else(
    app, client: httpx.AsyncClient, seeded: dict[str, str], monkeypatch
):
    """A spy on the per-field path: under the fast path, a trade's plain leaves (its id
    too) never reach it, while its resolved fields (netPnl, strategy) and the fields
    guarded by a permission still do."""
    schema: GatewaySchema = app.state.schema
    query = """{ trades(first: 5) { edges { node { id quantity entryTime side netPnl
        strategy { name } } } } me { email } }"""
    seen: dict[str, set[str]] = {}
    for label, executor in (
        ("fast", schema.execution_context_class),
        ("standard", schema.standard_executor),
    ):
        fields: set[str] = set()

        class Spy(executor):  # type: ignore[misc,valid-type]
            seen = fields

            def execute_field(self, parent_type, source, details, path, position_context):
                self.seen.add(f"{parent_type.name}.{details[0].node.name.value}")
                return super().execute_field(parent_type, source, details, path, position_context)

        monkeypatch.setattr(schema, "execution_context_class", Spy)
        response = await client.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {seeded['demo']}"}
        )
        assert "errors" not in response.json()
        seen[label] = fields

    leaves = {
        "Trade.id",
        "Trade.quantity",
        "Trade.entryTime",
        "Trade.side",
        "Strategy.name",
        "User.email",
    }
    assert leaves <= seen["standard"]
    assert not leaves & seen["fast"]
    resolved = {"Trade.netPnl", "Trade.strategy", "Query.trades", "Query.me"}
    assert resolved <= seen["fast"]


def test_only_fields_read_straight_off_their_object_are_plain_leaves(app):
    leaves = plain_leaves(app.state.schema._schema)
    trade = leaves["Trade"]
    assert trade["quantity"].attribute == "quantity"
    assert trade["entryTime"].attribute == "entry_time"
    assert trade["entryTime"].non_null
    assert not trade["exitTime"].non_null
    # A Node's id is its key's global id.
    assert trade["id"].node_type == "Trade"
    # Resolvers, permissions, arguments and objects are never plain leaves.
    assert not {"netPnl", "strategy"} & set(trade)
    assert not {"Query", "Mutation"} & set(leaves)
    assert not any(name.startswith("__") for name in leaves)


class _Checked(FieldExtension):
    """Stands for any check on a field (a permission is one)."""

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return next_(source, info, **kwargs)


@strawberry.type
class Thing(relay.Node):
    id: relay.NodeID[str]
    name: str | None
    checked: str = strawberry.field(extensions=[_Checked()])


class BrokenThing(Thing):
    """A Thing whose `name` cannot be read."""

    @property
    def name(self) -> str:  # type: ignore[override]
        raise RuntimeError("the name cannot be read")


@strawberry.type
class ThingQuery:
    @strawberry.field
    def thing(self) -> Thing:
        broken = object.__new__(BrokenThing)
        broken.id = "1"
        broken.checked = "b"
        return broken


def _executors(schema: strawberry.Schema) -> dict[str, type]:
    standard = bounded_executor(Limits())
    return {"fast": fast_executor(standard, plain_leaves(schema._schema)), "standard": standard}


def test_a_node_id_or_a_leaf_with_a_check_on_it_is_never_a_plain_leaf():
    schema = strawberry.Schema(query=ThingQuery)
    assert set(plain_leaves(schema._schema)["Thing"]) == {"id", "name"}

    definition = get_object_definition(Thing, strict=True)
    id_field = definition.get_field("id")
    assert id_field is not None
    id_field.extensions.append(_Checked())
    try:
        guarded = strawberry.Schema(query=ThingQuery)
        assert set(plain_leaves(guarded._schema)["Thing"]) == {"name"}
    finally:
        id_field.extensions.pop()


async def test_an_exception_reading_a_plain_leaf_is_reported_at_the_field_as_standard():
    """The fast path steps aside: the error is located at the field, and only the field is
    nulled, as the standard path does."""
    answers = {}
    for label, executor in _executors(strawberry.Schema(query=ThingQuery)).items():
        schema = strawberry.Schema(query=ThingQuery)
        schema.execution_context_class = executor
        result = await schema.execute("{ thing { id name } }")
        answers[label] = (result.data, [(e.message, e.path) for e in result.errors or []])

    assert answers["fast"] == answers["standard"]
    assert answers["fast"] == (
        {"thing": {"id": "VGhpbmc6MQ==", "name": None}},
        [("the name cannot be read", ["thing", "name"])],
    )
