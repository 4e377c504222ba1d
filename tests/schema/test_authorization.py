"""Authorization is declared on the schema: every root field names its permission, and every
field of an aggregate (Dashboard, Profile) releases data only after the viewer check."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, get_named_type
from strawberry.types.base import StrawberryObjectDefinition

from schema import build_schema
from schema._permissions import (
    AllowAnyone,
    HasAccessToken,
    IsAdmin,
    IsSignedIn,
    ViewerChecked,
    is_aggregate,
)
from tests.helpers import (
    error_codes,
    gql,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

# With the federation fields (`_entities`, `_service`): every root field a gateway may serve.
SCHEMA = build_schema(federation=True)
PERMISSIONS = (AllowAnyone, IsSignedIn, IsAdmin, HasAccessToken)
# Who may call what without a token: signing up and in, refreshing and signing out; and
# the subgraph SDL, which a router composes from (shown to whom introspection is).
PUBLIC = {"register", "login", "refreshToken", "logout", "_service"}


def object_definition(name: str) -> StrawberryObjectDefinition:
    definition = SCHEMA.get_type_by_name(name)
    assert isinstance(definition, StrawberryObjectDefinition), name
    return definition


def graphql_object(name: str) -> GraphQLObjectType:
    found = SCHEMA._schema.get_type(name)
    assert isinstance(found, GraphQLObjectType), name
    return found


def root_fields() -> dict[str, Any]:
    """Every root field by `Root.graphqlName`, as Strawberry declared it."""
    fields = {}
    for root in ("Query", "Mutation"):
        definition = object_definition(root)
        for field in definition.fields:
            name = SCHEMA.config.name_converter.get_graphql_name(field)
            fields[f"{root}.{name}"] = field
    return fields


ROOT_FIELDS = root_fields()


def aggregate_fields() -> list[tuple[str, str]]:
    """(root field, aggregate field) for every field of every aggregate a root field returns."""
    found = []
    query = SCHEMA._schema.query_type
    assert query is not None
    for root_name, root_field in query.fields.items():
        if _is_aggregate(get_named_type(root_field.type).name):
            named = get_named_type(root_field.type)
            assert isinstance(named, GraphQLObjectType)
            found += [(root_name, name) for name in named.fields]
    return found


def _is_aggregate(type_name: str) -> bool:
    definition = SCHEMA.get_type_by_name(type_name)
    return isinstance(definition, StrawberryObjectDefinition) and is_aggregate(definition.origin)


def _return_type_name(name: str) -> str:
    root, field = name.split(".")
    return str(get_named_type(graphql_object(root).fields[field].type).name)


def test_the_walk_sees_every_root_field() -> None:
    query, mutation = SCHEMA._schema.query_type, SCHEMA._schema.mutation_type
    assert query is not None
    assert mutation is not None
    expected = {f"Query.{name}" for name in query.fields} | {
        f"Mutation.{name}" for name in mutation.fields
    }
    assert set(ROOT_FIELDS) == expected


@pytest.mark.parametrize("name", sorted(ROOT_FIELDS))
def test_every_root_field_declares_one_permission(name: str) -> None:
    declared = list(ROOT_FIELDS[name].permission_classes or [])
    assert len(declared) == 1, f"{name} declares {declared}"
    assert declared[0] in PERMISSIONS, name
    assert (declared[0] is AllowAnyone) == (name.split(".")[1] in PUBLIC), name


@pytest.mark.parametrize("name", sorted(ROOT_FIELDS))
def test_only_aggregates_skip_the_wait_for_the_viewer_check(name: str) -> None:
    declared = list(ROOT_FIELDS[name].permission_classes or [])
    assert (HasAccessToken in declared) == _is_aggregate(_return_type_name(name)), name


def test_dashboard_and_profile_are_aggregates_and_every_field_waits_for_the_check() -> None:
    roots = {root for root, _ in aggregate_fields()}
    assert roots == {"dashboard", "profile"}
    for type_name in ("Dashboard", "Profile"):
        definition = object_definition(type_name)
        assert is_aggregate(definition.origin)
        for field in definition.fields:
            assert any(isinstance(e, ViewerChecked) for e in field.extensions), field.name


def _selection(root: str, name: str) -> str:
    query = SCHEMA._schema.query_type
    assert query is not None
    aggregate = get_named_type(query.fields[root].type)
    assert isinstance(aggregate, GraphQLObjectType)
    named = get_named_type(aggregate.fields[name].type)
    return f"{name} {{ __typename }}" if isinstance(named, GraphQLObjectType) else name


@pytest.mark.parametrize(("root", "name"), aggregate_fields())
async def test_each_aggregate_field_is_null_and_unauthenticated_under_a_revoked_token(
    client, sources, settings, root: str, name: str
) -> None:
    # Data in every source, so any field that released its value would show it.
    user = await make_user(sources)
    strategy = await make_strategy(sources, user, status="ACTIVE")
    await make_trades(sources, [trade_row(strategy)])
    await make_credentials(sources, user)
    token = token_for(settings, user)
    await sources.users.db["users"].update_one(
        {"_id": _oid(user.id)}, {"$inc": {"tokenVersion": 1}}
    )

    body = await gql(client, f"{{ {root} {{ {_selection(root, name)} }} }}", token=token)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    data = body["data"]
    aggregate = get_named_type(graphql_object("Query").fields[root].type)
    assert isinstance(aggregate, GraphQLObjectType)
    non_null = isinstance(aggregate.fields[name].type, GraphQLNonNull)
    if non_null:
        assert data is None  # a non-null field's error nulls the whole (non-null) aggregate
    else:
        assert data == {root: {name: None}}


async def test_with_a_valid_token_every_aggregate_field_answers(client, sources, settings) -> None:
    user = await make_user(sources)
    strategy = await make_strategy(sources, user, status="ACTIVE")
    await make_trades(sources, [trade_row(strategy)])
    await make_credentials(sources, user)
    token = token_for(settings, user)
    fields = aggregate_fields()
    selections = {
        root: " ".join(_selection(root, name) for r, name in fields if r == root)
        for root, _ in fields
    }
    query = "{ " + " ".join(f"{root} {{ {sel} }}" for root, sel in selections.items()) + " }"

    body = await gql(client, query, token=token)

    assert "errors" not in body, body
    for root, name in fields:
        assert body["data"][root][name] is not None, (root, name)


def _oid(user_id: str) -> Any:
    from bson import ObjectId  # noqa: PLC0415

    return ObjectId(user_id)
