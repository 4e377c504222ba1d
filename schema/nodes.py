"""`node(id:)` and `nodes(ids:)`: any object by its global id (Relay's Global Object
Identification), read through the same loaders and the same scope as every other field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import strawberry
from strawberry import relay

from gateway.core.errors import BadUserInput
from gateway.core.settings import MAX_PAGE_SIZE
from resolvers.nodes import find_nodes
from schema._base import Info
from schema._cost import ListSize
from schema._ids import GlobalIdInput, parse_global_id
from schema._limits import Bucket, limited
from schema._permissions import IsSignedIn
from schema.analytics import ActivityEvent
from schema.strategies import Strategy
from schema.trades import Trade
from schema.users import User

# Every type that implements Node, by name, with how its record becomes it
# (tests/schema/test_nodes.py checks these are exactly the schema's Node types).
NODE_TYPES: dict[str, Callable[[Any], relay.Node]] = {
    "User": User.from_record,
    "Strategy": Strategy.from_record,
    "Trade": Trade.from_record,
    "ActivityEvent": ActivityEvent.from_record,
}

_MALFORMED = "Not an id of this API: pass an `id` exactly as a field returned it."


def check_id_count(ids: list[GlobalIdInput], *, field: str) -> None:
    """BAD_USER_INPUT when a list of ids is longer than a page: one call reads at most
    MAX_PAGE_SIZE objects, as the cost model assumes."""
    if len(ids) > MAX_PAGE_SIZE:
        raise BadUserInput(f"'{field}' may hold at most {MAX_PAGE_SIZE} ids.", field=field)


def _wrong_type(of_type: str) -> str:
    return f"Not the id of a {of_type}: pass a {of_type}'s `id` exactly as a field returned it."


async def resolve_ids(
    info: Info, ids: list[GlobalIdInput], *, field: str, of_type: str | None = None
) -> list[Any]:
    """The objects, in order: a missing one, another user's, or one whose source failed is
    null (the last two with their coded error); a malformed id, or with `of_type` the id of
    another type, is null with BAD_USER_INPUT. An item that failed is its exception."""
    parsed = [parse_global_id(value) for value in ids]
    refs = [ref for ref in parsed if ref is not None and of_type in (None, ref[0])]
    found = iter(await find_nodes(info.context, refs))
    answer: list[Any] = []
    for ref in parsed:
        if ref is None:
            answer.append(BadUserInput(_MALFORMED, field=field))
            continue
        if of_type is not None and ref[0] != of_type:
            answer.append(BadUserInput(_wrong_type(of_type), field=field))
            continue
        record = next(found)
        if record is None or isinstance(record, Exception):
            answer.append(record)
        else:
            answer.append(NODE_TYPES[ref[0]](record))
    return answer


@strawberry.type
class NodeQueries:
    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The object with this global id, of any type that implements Node. Null "
        "when there is none or it is not yours to see (the same answer, so ids cannot be "
        "probed); null with a BAD_USER_INPUT error when `id` is not an id of this API.",
        permission_classes=[IsSignedIn],
    )
    async def node(
        self,
        info: Info,
        id: Annotated[  # noqa: A002 - the argument's GraphQL name
            GlobalIdInput, strawberry.argument(description="A global id, as a field returned it.")
        ],
    ) -> relay.Node | None:
        (answer,) = await resolve_ids(info, [id], field="id")
        if isinstance(answer, Exception):
            raise answer
        node: relay.Node | None = answer
        return node

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The objects with these global ids, in order, each as `node(id:)` answers "
        f"it (one query per source for any mix of types); at most {MAX_PAGE_SIZE} ids.",
        permission_classes=[IsSignedIn],
        directives=[ListSize(slicing_arguments=["ids"], assumed_size=MAX_PAGE_SIZE)],
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[GlobalIdInput],
            strawberry.argument(description="Global ids, as fields returned them."),
        ],
    ) -> list[relay.Node | None]:
        check_id_count(ids, field="ids")
        # An item that failed is returned as its exception: it is null, with its error.
        nodes: list[relay.Node | None] = await resolve_ids(info, ids, field="ids")
        return nodes
