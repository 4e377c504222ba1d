"""Merge queries for schema stitching (`usersByIds`, `strategiesByIds`, `tradesByIds`): one
batched query per source, results in key order, null for what the viewer may not see, the
same scope as `nodes`. The shape every merge query must have is read off the schema."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, parse
from sqlalchemy import select
from strawberry.types.base import StrawberryObjectDefinition

from datasources.trades import trades
from gateway.core.ratelimit import Bucket
from gateway.core.settings import MAX_PAGE_SIZE
from schema import build_schema
from schema._cost import CostModel, operation_of
from schema._ids import global_id
from schema._limits import bucket_of
from schema._permissions import IsSignedIn
from schema.merging import MERGE_QUERIES
from schema.nodes import NODE_TYPES
from tests.helpers import (
    error_codes,
    gid,
    gql,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

SCHEMA = build_schema()
SELECTIONS = {
    "User": "id email",
    "Strategy": "id name",
    "Trade": "id instrument",
}


def merge_query(type_name: str) -> str:
    field = MERGE_QUERIES[type_name]
    return f"query($ids: [ID!]!) {{ {field}(ids: $ids) {{ {SELECTIONS[type_name]} }} }}"


# The rules, read off the schema ------------------------------------------------------------


def _root_field(name: str) -> Any:
    query = SCHEMA._schema.query_type
    assert query is not None
    definition = query.extensions["strawberry-definition"]
    assert isinstance(definition, StrawberryObjectDefinition)
    for field in definition.fields:
        if SCHEMA.config.name_converter.get_graphql_name(field) == name:
            return field
    raise AssertionError(f"Query.{name} is missing")


def test_every_root_field_by_ids_is_a_merge_query_of_a_node_type():
    query = SCHEMA._schema.query_type
    assert query is not None
    by_ids = {name for name in query.fields if name.endswith("ByIds")}

    assert by_ids == set(MERGE_QUERIES.values())
    assert set(MERGE_QUERIES) <= set(NODE_TYPES)


@pytest.mark.parametrize("type_name", sorted(MERGE_QUERIES))
def test_a_merge_query_takes_ids_and_answers_a_list_of_its_type_sized_by_them(type_name):
    name = MERGE_QUERIES[type_name]
    query = SCHEMA._schema.query_type
    assert query is not None
    graphql_field = query.fields[name]

    # [T]!: one item per id, each nullable (a missing or forbidden id costs its item alone).
    returned = graphql_field.type
    assert isinstance(returned, GraphQLNonNull)
    assert isinstance(returned.of_type, GraphQLList)
    item = returned.of_type.of_type
    assert isinstance(item, GraphQLObjectType)
    assert item.name == type_name
    assert list(graphql_field.args) == ["ids"]
    assert str(graphql_field.args["ids"].type) == "[ID!]!"
    # Priced by the number of ids, signed in, rate limited like every read.
    priced = PRICED[type_name]
    each = cost_of(f'{{ {name}(ids: ["a"]) {{ {priced} }} }}') - 1
    assert each > 0
    assert cost_of(f'{{ {name}(ids: ["a", "b", "c"]) {{ {priced} }} }}') == 1 + 3 * each
    variables = {"ids": ["a"] * 7}
    assert cost_of(f"query($ids: [ID!]!) {{ {name}(ids: $ids) {{ {priced} }} }}", variables) == (
        1 + 7 * each
    )
    field = _root_field(name)
    assert field.permission_classes == [IsSignedIn]
    assert bucket_of(field) is Bucket.QUERY


# A selection of each type with a cost of its own (scalars come with their object's read).
PRICED = {
    "User": "strategies(first: 1) { totalCount }",
    "Strategy": "owner { id }",
    "Trade": "strategy { id }",
}


def cost_of(query: str, variables: dict[str, Any] | None = None) -> int:
    operation, fragments = operation_of(parse(query), None)
    assert operation is not None
    return CostModel(SCHEMA._schema).cost(operation, fragments, variables)


# Over HTTP ---------------------------------------------------------------------------------


async def objects_of(sources, user, type_name: str, count: int) -> list[str]:
    """The global ids of `count` objects of `type_name` the user can see (User: itself)."""
    if type_name == "User":
        return [gid(user)]
    strategies = [await make_strategy(sources, user) for _ in range(count)]
    if type_name == "Strategy":
        return [gid(strategy) for strategy in strategies]
    await make_trades(sources, [trade_row(strategy) for strategy in strategies])
    async with sources.trades.engine.connect() as conn:
        query = select(trades.c.id).where(trades.c.user_id == user.id).order_by(trades.c.id)
        rows = (await conn.execute(query)).all()
    return [str(global_id("Trade", str(row.id))) for row in rows]


def missing_ids(type_name: str, count: int) -> list[str]:
    """Well-formed ids of `type_name` that name nothing."""
    if type_name == "Trade":
        return [str(global_id("Trade", str(10**12 + n))) for n in range(count)]
    return [str(global_id(type_name, str(ObjectId()))) for _ in range(count)]


SOURCE_OF = {"User": "users", "Strategy": "strategies", "Trade": "trades"}


@pytest.mark.parametrize("type_name", sorted(MERGE_QUERIES))
@pytest.mark.parametrize("count", [1, MAX_PAGE_SIZE])
async def test_a_merge_query_reads_any_number_of_ids_in_one_query_in_their_order(
    client, sources, settings, round_trips, type_name, count
):
    user = await make_user(sources)
    found = await objects_of(sources, user, type_name, count=min(count, 2))
    # Missing ids between and around the real ones: their places stay, as nulls.
    ids = [*missing_ids(type_name, 1), *reversed(found)]
    ids = [*ids, *missing_ids(type_name, count - len(ids))][:count]
    # A user's scope holds one user (itself): only an ADMIN's lookup of users asks the source.
    viewer = await make_user(sources, role="ADMIN") if type_name == "User" else user
    field = MERGE_QUERIES[type_name]

    round_trips.reset()
    token = token_for(settings, viewer)
    body = await gql(client, merge_query(type_name), {"ids": ids}, token=token)

    assert "errors" not in body, body
    answered = [None if item is None else item["id"] for item in body["data"][field]]
    assert answered == [value if value in found else None for value in ids]
    assert len(answered) == count
    # The viewer check (users), then one query of the type's source, for 1 id or 100.
    expected = {"users": 2} if type_name == "User" else {"users": 1, SOURCE_OF[type_name]: 1}
    assert dict(round_trips.counts) == expected


@pytest.mark.parametrize("type_name", sorted(MERGE_QUERIES))
async def test_another_users_objects_answer_null_like_missing_ones_and_an_admin_sees_them(
    client, sources, settings, type_name
):
    owner = await make_user(sources)
    theirs = await objects_of(sources, owner, type_name, count=2)
    someone, admin = await make_user(sources), await make_user(sources, role="ADMIN")
    field = MERGE_QUERIES[type_name]

    as_someone = await gql(
        client, merge_query(type_name), {"ids": theirs}, token=token_for(settings, someone)
    )
    as_admin = await gql(
        client, merge_query(type_name), {"ids": theirs}, token=token_for(settings, admin)
    )

    assert as_someone == {"data": {field: [None] * len(theirs)}}
    assert [item["id"] for item in as_admin["data"][field]] == theirs


@pytest.mark.parametrize("type_name", sorted(MERGE_QUERIES))
async def test_a_merge_query_needs_a_signed_in_viewer(client, sources, type_name):
    body = await gql(client, merge_query(type_name), {"ids": missing_ids(type_name, 1)})

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


async def test_an_id_of_another_type_or_a_malformed_one_is_null_with_bad_user_input_at_its_place(
    client, sources, settings, round_trips
):
    user = await make_user(sources)
    (strategy,) = await objects_of(sources, user, "Strategy", count=1)
    ids = [strategy, gid(user), "%%%", str(global_id("Trade", "1"))]

    round_trips.reset()
    body = await gql(client, merge_query("Strategy"), {"ids": ids}, token=token_for(settings, user))

    answered = body["data"]["strategiesByIds"]
    assert [None if item is None else item["id"] for item in answered] == [strategy, *[None] * 3]
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["strategiesByIds", index], {"code": "BAD_USER_INPUT", "field": "ids"})
        for index in (1, 2, 3)
    ]
    assert "Strategy" in body["errors"][0]["message"]
    # Only the strategy was looked up: no trade was read for the Trade id.
    assert dict(round_trips.counts) == {"users": 1, "strategies": 1}


@pytest.mark.parametrize("type_name", sorted(MERGE_QUERIES))
async def test_a_merge_query_takes_at_most_a_page_of_ids_and_reads_nothing_beyond(
    client, sources, settings, round_trips, type_name
):
    user = await make_user(sources)
    ids = missing_ids(type_name, MAX_PAGE_SIZE + 1)

    round_trips.reset()
    body = await gql(client, merge_query(type_name), {"ids": ids}, token=token_for(settings, user))

    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "ids"}
    assert str(MAX_PAGE_SIZE) in body["errors"][0]["message"]
    assert body["data"] is None
    assert set(round_trips.counts) <= {"users"}  # the viewer check alone
