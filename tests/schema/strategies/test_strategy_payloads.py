"""The createStrategy and deleteStrategy payloads: the affected strategy, the deleted one's
global id, and the root Query (`query`), so one answer carries the lists a client cache must
update. Root fields selected under `query` are the root fields themselves: their permission,
rate limit and price hold there too."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLInterfaceType, GraphQLNonNull, GraphQLObjectType, get_named_type

from gateway.core.settings import MAX_QUERY_COST
from schema import build_schema
from schema._ids import global_id
from tests.helpers import (
    app_client,
    data_of,
    gid,
    gql,
    make_strategy,
    make_user,
    signed_in,
    token_for,
)
from tests.schema.strategies.ops import create_input, stored_of
from tests.schema.test_cost import cost_of

LIST = "strategies(first: 20) { totalCount edges { node { id name } } }"
CREATE = f"""
mutation Create($input: CreateStrategyInput!) {{
  createStrategy(input: $input) {{ strategy {{ id name }} query {{ {LIST} }} }}
}}
"""
DELETE = f"""
mutation Delete($id: ID!) {{
  deleteStrategy(id: $id) {{ deletedId strategy {{ id name }} query {{ {LIST} }} }}
}}
"""


def listed(query: dict[str, Any]) -> list[tuple[str, str]]:
    connection = query["strategies"]
    assert connection["totalCount"] == len(connection["edges"])
    return [(edge["node"]["id"], edge["node"]["name"]) for edge in connection["edges"]]


# What the payloads answer -------------------------------------------------------------------


async def test_create_strategy_answers_the_new_strategy_and_the_list_it_now_heads(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    older = await make_strategy(sources, user, name="older")

    body = await gql(client, CREATE, {"input": create_input(name="newer")}, token=token)

    payload = data_of(body)["createStrategy"]
    [made] = [doc for doc in await stored_of(sources, user) if doc["name"] == "newer"]
    assert payload["strategy"] == {"id": gid_of(made), "name": "newer"}
    assert listed(payload["query"]) == [(gid_of(made), "newer"), (gid(older), "older")]


async def test_delete_strategy_answers_its_global_id_and_the_list_without_it(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    kept = await make_strategy(sources, user, name="kept")
    gone = await make_strategy(sources, user, name="gone")

    body = await gql(client, DELETE, {"id": gid(gone)}, token=token)

    payload = data_of(body)["deleteStrategy"]
    assert payload["deletedId"] == payload["strategy"]["id"] == gid(gone)
    assert listed(payload["query"]) == [(gid(kept), "kept")]


async def test_the_payloads_query_shows_only_the_viewers_own_data(client, sources, settings):
    other = await make_user(sources)
    theirs = await make_strategy(sources, other, name="theirs")
    _user, token = await signed_in(sources, settings)

    body = await gql(
        client,
        """
        mutation Create($input: CreateStrategyInput!, $theirs: ID!) {
          createStrategy(input: $input) {
            query { strategies { totalCount } node(id: $theirs) { id } }
          }
        }
        """,
        {"input": create_input(), "theirs": gid(theirs)},
        token=token,
    )

    assert data_of(body) == {
        "createStrategy": {"query": {"strategies": {"totalCount": 1}, "node": None}}
    }


# The root fields' rules hold under `query` ------------------------------------------------


async def test_an_admin_field_under_query_is_refused_to_a_user_like_at_the_root(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)

    body = await gql(
        client,
        """
        mutation Create($input: CreateStrategyInput!) {
          createStrategy(input: $input) { strategy { name } query { users { totalCount } } }
        }
        """,
        {"input": create_input(name="made")},
        token=token,
    )

    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["createStrategy", "query", "users"]
    # `users` is non-null, so its refusal nulls `query`, and no further: the strategy the
    # mutation made still shows in the answer.
    assert body["data"] == {"createStrategy": {"strategy": {"name": "made"}, "query": None}}
    assert [doc["name"] for doc in await stored_of(sources, user)] == ["made"]


async def test_root_fields_under_query_spend_the_query_bucket(sources, settings):
    user = await make_user(sources)
    await make_strategy(sources, user)
    doomed = await make_strategy(sources, user)
    token = token_for(settings, user)
    overrides = {
        "rate_limit_enabled": True,
        "rate_limit_key_prefix": f"gw:test:payloads:{user.id}:",
        "rate_limit_query_burst": 1,
    }

    async with app_client(settings, **overrides) as http:
        body = await gql(
            http,
            """
            mutation Delete($id: ID!) {
              deleteStrategy(id: $id) {
                deletedId
                query { a: strategies { totalCount } b: strategies { totalCount } }
              }
            }
            """,
            {"id": gid(doomed)},
            token=token,
        )

    # One call in the bucket: `a` spends it, `b` is refused, as two root fields would be.
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["path"] == ["deleteStrategy", "query", "b"]
    assert body["data"]["deleteStrategy"]["query"] == {"a": {"totalCount": 1}, "b": None}


def test_a_selection_under_query_costs_what_it_costs_at_the_root() -> None:
    selection = "strategies(first: 10) { edges { node { code trades(first: 5) { totalCount } } } }"
    at_the_root = cost_of(f"{{ {selection} }}")
    bare = cost_of('mutation { deleteStrategy(id: "x") { deletedId } }')
    nested = cost_of(
        f'mutation {{ deleteStrategy(id: "x") {{ deletedId query {{ {selection} }} }} }}'
    )

    assert nested == bare + 1 + at_the_root  # `query` is one object, then the root fields


async def test_an_expensive_selection_under_query_is_refused_before_anything_is_created(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    expensive = (
        "strategies(first: 100) { edges { node { owner { strategies(first: 100) {"
        " edges { node { code } } } } } } }"
    )

    response = await client.post(
        "/graphql",
        json={
            "query": "mutation Create($input: CreateStrategyInput!) { createStrategy(input:"
            f" $input) {{ strategy {{ id }} query {{ {expensive} }} }} }}",
            "variables": {"input": create_input()},
        },
        headers={"Authorization": f"Bearer {token}"},
    )

    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["cost"] > error["extensions"]["budget"] == MAX_QUERY_COST
    assert await stored_of(sources, user) == []


# The rule, read off the schema -------------------------------------------------------------


def test_every_mutation_that_creates_or_deletes_a_node_answers_it_with_the_root_query():
    graphql = build_schema()._schema
    assert graphql.mutation_type is not None
    assert graphql.query_type is not None
    node = graphql.type_map["Node"]
    assert isinstance(node, GraphQLInterfaceType)
    nodes = {named.name for named in graphql.get_possible_types(node)}
    checked = []
    for name, field in graphql.mutation_type.fields.items():
        verb = next((verb for verb in ("create", "delete") if name.startswith(verb)), "")
        noun = name[len(verb) :]
        if not verb or noun not in nodes:
            continue
        payload = field.type.of_type if isinstance(field.type, GraphQLNonNull) else None
        assert isinstance(payload, GraphQLObjectType), f"{name} answers a payload object"
        fields = payload.fields
        object_field = noun[0].lower() + noun[1:]
        assert get_named_type(fields[object_field].type).name == noun, name
        # Nullable: a failure under it must not hide the change (schema/strategies.py).
        assert fields["query"].type is graphql.query_type, name
        if verb == "delete":
            assert str(fields["deletedId"].type) == "ID!", name
        checked.append(name)

    assert {"createStrategy", "deleteStrategy"} <= set(checked)


def gid_of(document: dict[str, Any]) -> str:
    """The global id of a raw strategy document."""
    return str(global_id("Strategy", str(document["_id"])))
