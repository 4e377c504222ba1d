"""The gateway as an Apollo Federation 2 subgraph: `_service { sdl }` and `_entities`.

Served only with FEDERATION=true (`build_schema(federation=True)`): a standalone gateway,
its GraphiQL and its introspection show the public schema (`schema.graphql`) and nothing
else. The subgraph SDL (`schema.federation.graphql`, `gateway schema print --federation`)
is that same public schema plus the federation bits, derived from it in `subgraph_sdl`:

- `extend schema @link(url: FEDERATION_SPEC, import: [...])`: Federation 2, and the
  directives imported from it. `@cost` and `@listSize` are the federation's own since 2.9
  (the same IBM cost directives schema/_cost.py declares), so a router's demand control
  reads the gateway's cost model.
- `@key(fields: "id")` on each type of `ENTITIES`: User, Strategy and Trade, keyed by the
  global id every other field shows. Another subgraph extends them (`type Strategy
  @key(fields: "id") { id: ID! ... }`) and returns references to them.
- `@shareable` on the value types other subgraphs define too: `PageInfo`, and every
  connection and edge (`SHAREABLE`).

Nothing is `@inaccessible`: every type and field of the public schema is meant for clients
(stored secrets are never schema fields), and the federation fields themselves
(`_entities`, `_service`, `_Entity`, `_Any`) are left out of the SDL, as routers expect.

`_entities` reads every representation through `resolvers.nodes.find_nodes`: N
representations of any mix of types cost one query per source. It is a root field like the
others: signed in (`IsSignedIn`), rate limited, priced by the cost limit (each
representation costs one lookup plus what is selected under it), and scoped to the viewer
(another user's entity is null, as a missing one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, NewType, cast

import strawberry
from graphql import (
    BooleanValueNode,
    ConstArgumentNode,
    ConstDirectiveNode,
    ConstListValueNode,
    ConstValueNode,
    DefinitionNode,
    DirectiveDefinitionNode,
    DocumentNode,
    FieldDefinitionNode,
    ListValueNode,
    NameNode,
    ObjectTypeDefinitionNode,
    SchemaExtensionNode,
    StringValueNode,
    TypeDefinitionNode,
    ValueNode,
    parse,
    print_ast,
    value_from_ast_untyped,
)
from strawberry import relay

from gateway.core.errors import BadUserInput, Forbidden, GatewayError
from resolvers.context import ADMIN
from resolvers.nodes import find_nodes
from schema._base import Info
from schema._cost import ListSize
from schema._ids import parse_global_id
from schema._limits import Bucket, limited
from schema._permissions import AllowAnyone, IsSignedIn
from schema.strategies import Strategy
from schema.trades import Trade
from schema.users import User

# The Federation version the SDL declares: 2.9 is the first with `@cost` and `@listSize`.
FEDERATION_SPEC = "https://specs.apollo.dev/federation/v2.9"

# Every entity, by type name, with how its record becomes it; each is keyed by `id`, its
# global id (tests/schema/test_federation.py: each is a Node type and in the `_Entity` union).
ENTITIES: Mapping[str, Callable[[Any], relay.Node]] = {
    "User": User.from_record,
    "Strategy": Strategy.from_record,
    "Trade": Trade.from_record,
}

# The fields `_service { sdl }` leaves out (the router's own protocol, not the graph).
FEDERATION_FIELDS = frozenset({"_entities", "_service"})
FEDERATION_TYPES = frozenset({"_Entity", "_Any", "_Service"})
# The directives the SDL imports from the federation spec instead of defining them.
IMPORTED_DIRECTIVES = ("@key", "@shareable", "@cost", "@listSize")


def is_shareable(type_name: str) -> bool:
    """Whether a type is a value type other subgraphs may define as well: `PageInfo`, and
    every connection and edge (each subgraph pages its lists the same way)."""
    return type_name == "PageInfo" or type_name.endswith(("Connection", "Edge"))


def _parse_representation_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


# `build_schema` maps it to its scalar, `_Any`.
Representation = NewType("Representation", object)
REPRESENTATION_SCALAR = strawberry.scalar(
    name="_Any",
    description="An entity representation: `{__typename, id}` as another subgraph or the "
    "router sends it.",
    serialize=lambda value: value,
    parse_value=lambda value: value,
    parse_literal=_parse_representation_literal,
)

Entity = Annotated[
    User | Strategy | Trade,
    strawberry.union("_Entity", description="Every type another subgraph may reference."),
]

_MALFORMED = (
    "A representation must be an object {__typename, id}: __typename one of "
    + ", ".join(sorted(ENTITIES))
    + ", and id that type's global id, as a field returned it."
)


@strawberry.type(name="_Service", description="This subgraph, as a router composes it.")
class Service:
    sdl: str = strawberry.field(description="The subgraph SDL (schema.federation.graphql).")


def parse_representation(value: object) -> tuple[str, str] | None:
    """The (type name, key) a representation names; None when it is not one of ours: not an
    object, a `__typename` that is no entity, an `id` that is not that type's global id."""
    if not isinstance(value, dict):
        return None
    type_name, gid = value.get("__typename"), value.get("id")
    if not isinstance(type_name, str) or type_name not in ENTITIES or not isinstance(gid, str):
        return None
    parsed = parse_global_id(gid)
    if parsed is None or parsed[0] != type_name:
        return None
    return parsed


async def resolve_entities(info: Info, representations: Sequence[object]) -> list[Any]:
    """The entities, in order: a missing one, another user's, or one whose source failed is
    null (the last with its coded error); a malformed representation is null with
    BAD_USER_INPUT. Every lookup starts at once, so each source is asked once."""
    parsed = [parse_representation(value) for value in representations]
    found = iter(await find_nodes(info.context, [ref for ref in parsed if ref is not None]))
    answer: list[Any] = []
    for ref in parsed:
        if ref is None:
            answer.append(BadUserInput(_MALFORMED, field="representations"))
            continue
        record = next(found)
        if record is None or isinstance(record, Exception):
            answer.append(record)
        else:
            answer.append(ENTITIES[ref[0]](record))
    return answer


async def _sdl_refusal(info: Info) -> GatewayError | None:
    """The subgraph SDL is the whole schema: it is shown to whom introspection is."""
    policy = getattr(info.schema, "introspection", "on")
    if policy == "on":
        return None
    if policy == "off":
        return Forbidden("Introspection is disabled, and with it the subgraph SDL.")
    try:
        viewer = await info.context.viewer()
    except GatewayError as exc:
        return exc
    return None if viewer.user.role == ADMIN else Forbidden("The subgraph SDL is for ADMIN only.")


@strawberry.type
class FederationQueries:
    @limited(Bucket.QUERY)
    @strawberry.field(
        name="_entities",
        description="The entities these representations name, in order (Apollo Federation); "
        "null for one that is missing or not yours to see.",
        permission_classes=[IsSignedIn],
        directives=[ListSize(slicing_arguments=["representations"])],
    )
    async def entities(
        self,
        info: Info,
        representations: Annotated[
            list[Representation],
            strawberry.argument(description="`{__typename, id}` of each entity."),
        ],
    ) -> list[Entity | None]:
        # An item that failed is returned as its exception: it is null, with its error.
        entities: list[Entity | None] = await resolve_entities(info, representations)
        return entities

    @limited(Bucket.QUERY)
    @strawberry.field(
        name="_service",
        description="This subgraph's SDL, for composition (Apollo Federation).",
        permission_classes=[AllowAnyone],
    )
    async def service(self, info: Info) -> Service:
        refusal = await _sdl_refusal(info)
        if refusal is not None:
            raise refusal
        sdl = getattr(info.schema, "subgraph_sdl", None)
        if not isinstance(sdl, str):  # the schema was not built with federation=True
            raise Forbidden("This gateway does not serve a subgraph.")
        return Service(sdl=sdl)


# The SDL --------------------------------------------------------------------------------


def _name(value: str) -> NameNode:
    return NameNode(value=value)


def _directive(name: str, **arguments: ConstValueNode) -> ConstDirectiveNode:
    return ConstDirectiveNode(
        name=_name(name),
        arguments=tuple(
            ConstArgumentNode(name=_name(key), value=value) for key, value in arguments.items()
        ),
    )


def _with_directives(node: Any, *added: ConstDirectiveNode) -> Any:
    return replace(node, directives=(*(node.directives or ()), *added))


def _int_arguments(node: FieldDefinitionNode) -> set[str]:
    return {
        argument.name.value
        for argument in node.arguments or ()
        if print_ast(argument.type).rstrip("!") == "Int"
    }


def _federated_list_size(
    directive: ConstDirectiveNode, int_arguments: set[str]
) -> ConstDirectiveNode:
    """Federation's @listSize slices by Int arguments only, and by default requires exactly
    one: here a list argument (`nodes(ids:)`) sizes by its length, so it is left to
    `assumedSize`, and each slicing argument is optional (a page size has its default)."""
    arguments: list[ConstArgumentNode] = []
    for argument in directive.arguments or ():
        if argument.name.value == "slicingArguments" and isinstance(argument.value, ListValueNode):
            kept = tuple(
                value
                for value in argument.value.values
                if isinstance(value, StringValueNode) and value.value in int_arguments
            )
            if not kept:
                continue
            argument = replace(argument, value=ConstListValueNode(values=kept))  # noqa: PLW2901
            arguments.append(argument)
            arguments.append(
                ConstArgumentNode(
                    name=_name("requireOneSlicingArgument"), value=BooleanValueNode(value=False)
                )
            )
            continue
        arguments.append(argument)
    return replace(directive, arguments=tuple(arguments))


def _field(node: FieldDefinitionNode) -> FieldDefinitionNode:
    int_arguments = _int_arguments(node)
    directives = tuple(
        _federated_list_size(d, int_arguments) if d.name.value == "listSize" else d
        for d in node.directives or ()
    )
    return replace(node, directives=directives)


def _definition(node: DefinitionNode) -> DefinitionNode | None:
    if isinstance(node, DirectiveDefinitionNode):
        # Imported from the federation spec, which defines them.
        return None if f"@{node.name.value}" in IMPORTED_DIRECTIVES else node
    if not isinstance(node, TypeDefinitionNode):
        return node
    name = node.name.value
    if name in FEDERATION_TYPES:
        return None
    if not isinstance(node, ObjectTypeDefinitionNode):
        return node
    copied = replace(
        node,
        fields=tuple(
            _field(field)
            for field in node.fields or ()
            if field.name.value not in FEDERATION_FIELDS
        ),
    )
    added: list[ConstDirectiveNode] = []
    if name in ENTITIES:
        added.append(_directive("key", fields=StringValueNode(value="id")))
    if is_shareable(name):
        added.append(_directive("shareable"))
    return cast(DefinitionNode, _with_directives(copied, *added))


def subgraph_sdl(printed: str) -> str:
    """The subgraph SDL of a schema printed with its federation fields (`build_schema(
    federation=True).as_str()`): the public schema, with the federation bits."""
    document = parse(printed)
    link = SchemaExtensionNode(
        directives=(
            _directive(
                "link",
                url=StringValueNode(value=FEDERATION_SPEC),
                **{
                    "import": ConstListValueNode(
                        values=tuple(StringValueNode(value=name) for name in IMPORTED_DIRECTIVES)
                    )
                },
            ),
        ),
        operation_types=(),
    )
    definitions = [
        found for found in (_definition(node) for node in document.definitions) if found is not None
    ]
    return print_ast(DocumentNode(definitions=(cast(DefinitionNode, link), *definitions))) + "\n"
