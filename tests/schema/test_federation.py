"""The gateway as an Apollo Federation 2 subgraph (FEDERATION=true): `_service { sdl }` is
the committed schema.federation.graphql, and `_entities` reads any mix of representations
through the loaders, in the viewer's scope, under the same permission, rate limit and cost
limit as every root field. The SDL's rules are read off the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLObjectType,
    GraphQLUnionType,
    ObjectTypeDefinitionNode,
    TypeDefinitionNode,
    parse,
    print_ast,
)
from sqlalchemy import select

from datasources.trades import trades
from gateway.app import create_app
from gateway.core.settings import MAX_QUERY_COST
from schema import build_schema
from schema._ids import global_id
from schema.federation import ENTITIES, FEDERATION_SPEC, is_shareable
from schema.nodes import NODE_TYPES
from tests.conftest import ROUND_TRIPS
from tests.helpers import (
    ROOT,
    app_client,
    error_codes,
    gid,
    gql,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

FEDERATED = build_schema(federation=True)
ENTITIES_QUERY = """
query Entities($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on User { id email }
    ... on Strategy { id name }
    ... on Trade { id instrument }
  }
}
"""


@pytest.fixture(scope="module")
async def federated_app(app, settings) -> AsyncIterator[Any]:
    """A second app over the same databases, serving the subgraph (FEDERATION=true)."""
    del app  # the suite's app migrated the databases
    application = create_app(settings.model_copy(update={"federation": True}))
    async with application.router.lifespan_context(application):
        ROUND_TRIPS.watch(application.state.sources)
        yield application


@pytest.fixture
async def subgraph(federated_app, sources) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the subgraph app; the databases emptied first (`sources`)."""
    del sources
    transport = httpx.ASGITransport(app=federated_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://subgraph.test") as http:
        yield http


def ref(type_name: str, api_id: str) -> dict[str, str]:
    return {"__typename": type_name, "id": api_id}


async def a_trader(sources, *, strategies: int, trades_count: int) -> dict[str, Any]:
    """A user with strategies, and trades spread over them; their representations."""
    user = await make_user(sources)
    made = [await make_strategy(sources, user) for _ in range(strategies)]
    rows = [trade_row(made[i % strategies]) for i in range(trades_count)]
    if rows:
        await make_trades(sources, rows)
    async with sources.trades.engine.connect() as conn:
        query = select(trades.c.id).where(trades.c.user_id == user.id).order_by(trades.c.id)
        trade_ids = [row.id for row in await conn.execute(query)]
    return {
        "user": user,
        "refs": [
            ref("User", gid(user)),
            *(ref("Strategy", gid(strategy)) for strategy in made),
            *(ref("Trade", str(global_id("Trade", str(trade_id)))) for trade_id in trade_ids),
        ],
    }


# The subgraph SDL, read off the schema --------------------------------------------------------


def _definitions(sdl: str) -> dict[str, TypeDefinitionNode]:
    return {
        node.name.value: node
        for node in parse(sdl).definitions
        if isinstance(node, TypeDefinitionNode)
    }


def _directives(node: TypeDefinitionNode) -> list[str]:
    return [print_ast(directive) for directive in node.directives or ()]


def test_the_committed_subgraph_sdl_is_the_one_the_code_builds():
    assert FEDERATED.subgraph_sdl == (ROOT / "schema.federation.graphql").read_text()


def test_the_subgraph_sdl_is_the_public_schema_with_the_federation_bits():
    public = _definitions(build_schema().as_str())
    subgraph = _definitions(FEDERATED.subgraph_sdl or "")

    # The same types, each with the same fields: nothing added, nothing hidden.
    assert set(subgraph) == set(public)
    for name, node in public.items():
        if isinstance(node, ObjectTypeDefinitionNode):
            other = subgraph[name]
            assert isinstance(other, ObjectTypeDefinitionNode)
            assert [f.name.value for f in other.fields or ()] == [
                f.name.value for f in node.fields or ()
            ], name
    assert (FEDERATED.subgraph_sdl or "").startswith(
        f'extend schema @link(url: "{FEDERATION_SPEC}", import: '
    )


def test_exactly_the_entities_are_keyed_by_their_global_id_and_every_page_type_is_shareable():
    subgraph = _definitions(FEDERATED.subgraph_sdl or "")
    keyed = {name for name, node in subgraph.items() if '@key(fields: "id")' in _directives(node)}
    shareable = {name for name, node in subgraph.items() if "@shareable" in _directives(node)}
    pages = {
        name
        for name, node in subgraph.items()
        if isinstance(node, ObjectTypeDefinitionNode)
        and (name.endswith(("Connection", "Edge")) or name == "PageInfo")
    }

    # Entities are Node types (their `id` is the global id), in the `_Entity` union.
    assert keyed == set(ENTITIES) == {"User", "Strategy", "Trade"}
    assert keyed <= set(NODE_TYPES)
    union = FEDERATED._schema.type_map["_Entity"]
    assert isinstance(union, GraphQLUnionType)
    assert {member.name for member in union.types} == set(ENTITIES)
    # A new connection is shareable without anyone remembering to mark it.
    assert shareable == pages == {name for name in subgraph if is_shareable(name)}
    assert {"PageInfo", "StrategyConnection", "StrategyEdge"} <= shareable


def test_the_public_schema_has_no_federation_field():
    query = build_schema()._schema.query_type
    federated_query = FEDERATED._schema.query_type
    assert isinstance(query, GraphQLObjectType)
    assert isinstance(federated_query, GraphQLObjectType)

    assert set(federated_query.fields) - set(query.fields) == {"_entities", "_service"}
    assert "_Any" not in build_schema()._schema.type_map


async def test_service_answers_the_subgraph_sdl(subgraph, sources):
    body = await gql(subgraph, "{ _service { sdl } }")

    assert body == {"data": {"_service": {"sdl": FEDERATED.subgraph_sdl}}}


async def test_without_federation_the_gateway_knows_no_federation_field(client, sources):
    body = await gql(client, "{ _service { sdl } }")

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "Cannot query field '_service'" in body["errors"][0]["message"]


# _entities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("strategies", "trades_count"), [(2, 2), (99, 100)])
async def test_entities_of_mixed_types_cost_one_query_per_source_whatever_their_number(
    subgraph, sources, settings, round_trips, strategies, trades_count
):
    mine = await a_trader(sources, strategies=strategies, trades_count=trades_count)
    refs = mine["refs"]
    assert len(refs) in (5, 200)

    round_trips.reset()
    body = await gql(
        subgraph,
        ENTITIES_QUERY,
        {"representations": refs},
        token=token_for(settings, mine["user"]),
    )

    assert "errors" not in body, body
    entities = body["data"]["_entities"]
    assert [(e["__typename"], e["id"]) for e in entities] == [
        (r["__typename"], r["id"]) for r in refs
    ]
    assert entities[0]["email"] == mine["user"].email
    # users: the viewer check (the User entity is the viewer, served from its cache); then
    # one lookup per other source, for 5 representations as for 200.
    assert dict(round_trips.counts) == {"users": 1, "strategies": 1, "trades": 1}


async def test_another_users_entities_are_null_like_missing_ones(subgraph, sources, settings):
    theirs = await a_trader(sources, strategies=1, trades_count=1)
    me = await make_user(sources)
    missing = [
        ref("Strategy", str(global_id("Strategy", "0" * 24))),
        ref("Trade", str(global_id("Trade", "999999"))),
    ]

    body = await gql(
        subgraph,
        ENTITIES_QUERY,
        {"representations": theirs["refs"] + missing},
        token=token_for(settings, me),
    )

    assert body == {"data": {"_entities": [None] * 5}}


async def test_an_admin_reads_any_users_entities(subgraph, sources, settings):
    theirs = await a_trader(sources, strategies=1, trades_count=1)
    admin = await make_user(sources, role="ADMIN")

    body = await gql(
        subgraph,
        ENTITIES_QUERY,
        {"representations": theirs["refs"]},
        token=token_for(settings, admin),
    )

    assert [e["id"] for e in body["data"]["_entities"]] == [r["id"] for r in theirs["refs"]]


async def test_an_anonymous_entities_call_is_unauthenticated_and_reads_nothing(
    subgraph, sources, round_trips
):
    theirs = await a_trader(sources, strategies=1, trades_count=1)

    round_trips.reset()
    body = await gql(subgraph, ENTITIES_QUERY, {"representations": theirs["refs"]})

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert dict(round_trips.counts) == {}


async def test_a_malformed_representation_is_null_with_bad_user_input_at_its_place(
    subgraph, sources, settings
):
    mine = await a_trader(sources, strategies=1, trades_count=0)
    user_ref, strategy_ref = mine["refs"]
    malformed = [
        ref("Credentials", strategy_ref["id"]),  # not an entity
        ref("User", strategy_ref["id"]),  # the id of another type
        {"__typename": "Strategy"},  # no id
        {"__typename": "Strategy", "id": 7},  # not a string
        ref("Strategy", "not an id"),
        "Strategy",  # not an object
    ]

    body = await gql(
        subgraph,
        ENTITIES_QUERY,
        {"representations": [strategy_ref, *malformed, user_ref]},
        token=token_for(settings, mine["user"]),
    )

    entities = body["data"]["_entities"]
    assert entities[0]["id"] == strategy_ref["id"]
    assert entities[-1]["id"] == user_ref["id"]
    assert entities[1:-1] == [None] * len(malformed)
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["_entities", i], {"code": "BAD_USER_INPUT", "field": "representations"})
        for i in range(1, len(malformed) + 1)
    ]


async def test_representations_may_be_written_in_the_query(subgraph, sources, settings):
    mine = await a_trader(sources, strategies=1, trades_count=0)
    strategy_id = mine["refs"][1]["id"]
    query = (
        f'{{ _entities(representations: [{{__typename: "Strategy", id: "{strategy_id}"}}]) '
        "{ ... on Strategy { id } } }"
    )

    body = await gql(subgraph, query, token=token_for(settings, mine["user"]))

    assert body == {"data": {"_entities": [{"id": strategy_id}]}}


async def test_the_cost_counts_each_representation_and_what_is_selected_under_it(
    subgraph, sources, settings
):
    mine = await a_trader(sources, strategies=1, trades_count=0)
    refs = mine["refs"] * 3
    token = token_for(settings, mine["user"])

    nested = (
        "query($representations: [_Any!]!) { _entities(representations: $representations) "
        "{ ... on Strategy { owner { id } } } }"
    )

    async def cost(query: str) -> int:
        response = await subgraph.post(
            "/graphql",
            json={"query": query, "variables": {"representations": refs}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert "errors" not in response.json()
        requested: int = response.json()["extensions"]["cost"]["requested"]
        return requested

    # _entities (1) + 6 x (the lookup 1 + scalars 0); then + 6 x Strategy.owner (1).
    assert await cost(ENTITIES_QUERY) == 1 + 6
    assert await cost(nested) == 1 + 6 * 2


async def test_a_huge_representations_list_is_refused_before_any_source_is_asked(
    subgraph, sources, settings, round_trips
):
    user = await make_user(sources)
    refs = [ref("Strategy", str(global_id("Strategy", "0" * 24)))] * MAX_QUERY_COST

    round_trips.reset()
    body = await gql(
        subgraph, ENTITIES_QUERY, {"representations": refs}, token=token_for(settings, user)
    )

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] == 1 + MAX_QUERY_COST
    assert dict(round_trips.counts) == {}


async def test_the_subgraph_sdl_is_shown_to_whom_introspection_is(settings, sources):
    user, admin = await make_user(sources), await make_user(sources, role="ADMIN")
    query = "{ _service { sdl } }"

    async with app_client(settings, federation=True, introspection="admin") as http:
        anonymous = await gql(http, query)
        signed_in = await gql(http, query, token=token_for(settings, user))
        allowed = await gql(http, query, token=token_for(settings, admin))
    async with app_client(settings, federation=True, introspection="off") as http:
        off = await gql(http, query, token=token_for(settings, admin))

    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert error_codes(signed_in) == error_codes(off) == ["FORBIDDEN"]
    assert allowed == {"data": {"_service": {"sdl": FEDERATED.subgraph_sdl}}}
