"""Global object identification: every object's id is opaque and unique across types, and
`node(id:)` / `nodes(ids:)` read any of them through the request's loaders, in the viewer's
scope. The rules that keep it so are read off the schema."""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    get_named_type,
    parse,
)
from sqlalchemy import select
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
)

from datasources.analytics import activity_events, record_activity
from datasources.trades import trades
from resolvers.nodes import KINDS
from schema import build_schema
from schema._cost import CostModel, operation_of
from schema._ids import GlobalIdInput, global_id, parse_global_id
from schema.nodes import NODE_TYPES
from tests.helpers import (
    NOW,
    error_codes,
    gid,
    gql,
    key,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

SCHEMA = build_schema()
NODES = """
query Nodes($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on User { email }
    ... on Strategy { name }
    ... on Trade { instrument }
    ... on ActivityEvent { kind }
  }
}
"""
NODE = "query Node($id: ID!) { node(id: $id) { __typename id ... on Strategy { name } } }"


# The rules, read off the schema ------------------------------------------------------------


def test_every_type_with_an_id_implements_node_and_node_can_read_it():
    graphql = SCHEMA._schema
    with_id = {
        name
        for name, named in graphql.type_map.items()
        if isinstance(named, GraphQLObjectType)
        and not name.startswith("__")
        and "id" in named.fields
        and not name.endswith("Payload")
    }
    node = graphql.type_map["Node"]
    assert isinstance(node, GraphQLInterfaceType)
    implementing = {named.name for named in graphql.get_possible_types(node)}

    assert with_id == implementing == set(NODE_TYPES) == set(KINDS)


def _python_type(annotation: Any) -> Any:
    while isinstance(annotation, StrawberryOptional | StrawberryList):
        annotation = annotation.of_type
    return annotation


def test_every_argument_and_input_field_that_takes_an_id_takes_a_global_id():
    graphql = SCHEMA._schema
    found = {}
    for named in graphql.type_map.values():
        definition = (named.extensions or {}).get("strawberry-definition")
        if not isinstance(definition, StrawberryObjectDefinition) or named.name.startswith("__"):
            continue
        if isinstance(named, GraphQLInputObjectType):
            for field in definition.fields:
                graphql_name = SCHEMA.config.name_converter.get_graphql_name(field)
                if graphql_name not in named.fields:  # private
                    continue
                if get_named_type(named.fields[graphql_name].type).name == "ID":
                    found[f"{named.name}.{graphql_name}"] = _python_type(field.type)
        elif isinstance(named, GraphQLObjectType):
            for field in definition.fields:
                graphql_field = named.fields.get(
                    SCHEMA.config.name_converter.get_graphql_name(field)
                )
                if graphql_field is None:  # private
                    continue
                for argument in field.arguments:
                    name = SCHEMA.config.name_converter.get_graphql_name(argument)
                    if get_named_type(graphql_field.args[name].type).name == "ID":
                        found[f"{named.name}.{name}"] = _python_type(argument.type)

    # Each of these is read as a global id (schema/_ids.py); a plain strawberry.ID would not be.
    assert {"Mutation.id", "Query.id", "Query.ids", "TradeFilterInput.strategyId"} <= set(found)
    assert {where: kind for where, kind in found.items() if kind is not GlobalIdInput} == {}


def test_ids_are_opaque_and_unique_across_types():
    trade, event = global_id("Trade", "15"), global_id("ActivityEvent", "15")

    assert trade != event
    assert "15" not in trade
    assert parse_global_id(trade) == ("Trade", "15")
    assert parse_global_id(event) == ("ActivityEvent", "15")
    # Not ours: not base64 of Type:key, a type without ids, a key the type cannot have.
    for value in ("15", "not base64!", global_id("Credentials", "15"), global_id("Trade", "x")):
        assert parse_global_id(value) is None, value


# node and nodes over HTTP ------------------------------------------------------------------


async def a_trader(sources) -> dict[str, Any]:
    """A user with a strategy, a trade of it and an activity event: one object per type."""
    user = await make_user(sources)
    strategy = await make_strategy(sources, user, name="alpha")
    await make_trades(sources, [trade_row(strategy, instrument="ETHUSDT")])
    async with sources.trades.engine.connect() as conn:
        trade_id = (
            await conn.execute(select(trades.c.id).where(trades.c.user_id == user.id))
        ).one()
    async with sources.analytics.engine.begin() as conn:
        await record_activity(conn=conn, user_id=user.id, kind="SIGNED_IN", at=NOW)
        query = select(activity_events.c.id).where(activity_events.c.user_id == user.id)
        event_id = (await conn.execute(query)).one()
    return {
        "user": user,
        "ids": [
            gid(user),
            gid(strategy),
            str(global_id("Trade", str(trade_id.id))),
            str(global_id("ActivityEvent", str(event_id.id))),
        ],
    }


async def test_nodes_reads_every_type_in_order_with_one_query_per_source(
    client, sources, settings, round_trips
):
    mine = await a_trader(sources)
    token = token_for(settings, mine["user"])

    round_trips.reset()
    body = await gql(client, NODES, {"ids": [*mine["ids"], mine["ids"][1]]}, token=token)

    assert "errors" not in body, body
    nodes = body["data"]["nodes"]
    assert [node["__typename"] for node in nodes] == [
        "User",
        "Strategy",
        "Trade",
        "ActivityEvent",
        "Strategy",
    ]
    assert [node["id"] for node in nodes] == [*mine["ids"], mine["ids"][1]]
    assert nodes[0]["email"] == mine["user"].email
    assert (nodes[1]["name"], nodes[2]["instrument"], nodes[3]["kind"]) == (
        "alpha",
        "ETHUSDT",
        "SIGNED_IN",
    )
    # users: the viewer check (the User node is the viewer, served from its cache); then one
    # lookup per other source, whatever the number of ids of each.
    assert dict(round_trips.counts) == {"users": 1, "strategies": 1, "trades": 1, "analytics": 1}


async def test_node_refetches_an_object_by_the_id_it_showed(client, sources, settings):
    mine = await a_trader(sources)
    token = token_for(settings, mine["user"])
    listed = await gql(client, "{ strategies { edges { node { id } } } }", token=token)
    strategy_id = listed["data"]["strategies"]["edges"][0]["node"]["id"]

    body = await gql(client, NODE, {"id": strategy_id}, token=token)

    assert body == {
        "data": {"node": {"__typename": "Strategy", "id": strategy_id, "name": "alpha"}}
    }


async def test_another_users_ids_answer_null_like_missing_ones(client, sources, settings):
    theirs = await a_trader(sources)
    me = await make_user(sources)
    missing = [
        str(global_id("Strategy", "0" * 24)),
        str(global_id("Trade", "999999")),
        str(global_id("User", "0" * 24)),
    ]

    body = await gql(client, NODES, {"ids": theirs["ids"] + missing}, token=token_for(settings, me))

    assert body == {"data": {"nodes": [None] * 7}}


async def test_an_admin_reads_any_users_objects(client, sources, settings):
    theirs = await a_trader(sources)
    admin = await make_user(sources, role="ADMIN")

    body = await gql(client, NODES, {"ids": theirs["ids"]}, token=token_for(settings, admin))

    assert [node["id"] for node in body["data"]["nodes"]] == theirs["ids"]


async def test_a_malformed_id_answers_null_with_bad_user_input_at_its_place(
    client, sources, settings
):
    mine = await a_trader(sources)
    strategy = mine["ids"][1]
    raw = key(strategy)  # the database key itself is no id of the API

    padded = strategy.rstrip("=") + "=" * 5  # decodes to the same key, but is no id we gave
    ids = [strategy, raw, "%%%", padded]

    body = await gql(client, NODES, {"ids": ids}, token=token_for(settings, mine["user"]))

    assert body["data"]["nodes"][0]["id"] == strategy
    assert body["data"]["nodes"][1:] == [None, None, None]
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["nodes", 1], {"code": "BAD_USER_INPUT", "field": "ids"}),
        (["nodes", 2], {"code": "BAD_USER_INPUT", "field": "ids"}),
        (["nodes", 3], {"code": "BAD_USER_INPUT", "field": "ids"}),
    ]
    single = await gql(client, NODE, {"id": raw}, token=token_for(settings, mine["user"]))
    assert single["data"] == {"node": None}
    assert error_codes(single) == ["BAD_USER_INPUT"]


async def test_node_needs_a_signed_in_viewer_before_it_reads_the_id(client, sources):
    body = await gql(client, NODE, {"id": "not an id"})

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] == {"node": None}


async def test_nodes_takes_at_most_a_page_of_ids(client, sources, settings):
    user = await make_user(sources)
    ids = [gid(user)] * 101

    body = await gql(client, NODES, {"ids": ids}, token=token_for(settings, user))

    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "ids"}


def cost_of(query: str, variables: dict[str, Any] | None = None) -> int:
    operation, fragments = operation_of(parse(query), None)
    assert operation is not None
    return CostModel(SCHEMA._schema).cost(operation, fragments, variables)


def test_a_fragment_under_node_is_priced_on_its_own_type():
    fragment = "fragment Code on Strategy { code }"

    # node (1) + Strategy.code (@cost 25), inline or spread: not the 1 a field of the Node
    # interface would cost.
    assert cost_of('{ node(id: "x") { ... on Strategy { code } } }') == 26
    assert cost_of('{ node(id: "x") { ...Code } } ' + fragment) == 26
    # nodes is sized by the ids it is given, literal or variable: 3 x (Node.id).
    assert cost_of('{ nodes(ids: ["a", "b", "c"]) { id } }') == 1 + 3
    assert cost_of("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a"] * 3}) == 4
