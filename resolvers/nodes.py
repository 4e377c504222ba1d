"""Objects by kind and key, for `node(id:)` and `nodes(ids:)`.

Every kind is read through its source's by-id loader, so any mix of ids costs one query
per source, and within the viewer's scope (the loaders filter by owner): another user's
object reads as missing. A key that the kind cannot have (not a 24-hex ObjectId, not a
bigint id) is refused before any source is asked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from datasources import Loaders, sql_ids
from resolvers.context import Context
from resolvers.records import ActivityEventRecord, StrategyRecord, TradeRecord, UserRecord

NodeRecord = UserRecord | StrategyRecord | TradeRecord | ActivityEventRecord

# A Mongo document's id as the gateway writes it (`str(ObjectId)`): 24 lower-case hex digits.
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")


def _is_object_id(key: str) -> bool:
    return _OBJECT_ID.fullmatch(key) is not None


def _is_sql_id(key: str) -> bool:
    return bool(sql_ids([key]))


async def _user(loaders: Loaders, key: str) -> NodeRecord | None:
    record = await loaders.users.by_id.load(key)
    # An account being deleted is gone already, as everywhere else.
    return None if record is None or record.deleting else record


async def _strategy(loaders: Loaders, key: str) -> NodeRecord | None:
    return await loaders.strategies.by_id.load(key)


async def _trade(loaders: Loaders, key: str) -> NodeRecord | None:
    return await loaders.trades.by_id.load(key)


async def _event(loaders: Loaders, key: str) -> NodeRecord | None:
    return await loaders.analytics.event_by_id.load(key)


@dataclass(frozen=True, slots=True)
class NodeKind:
    """How objects of one kind are keyed and read."""

    is_key: Callable[[str], bool]
    load: Callable[[Loaders, str], Awaitable[NodeRecord | None]]


# Every kind of object `node(id:)` reads, by its GraphQL type name (the schema's Node types
# are exactly these: tests/schema/test_nodes.py).
KINDS: dict[str, NodeKind] = {
    "User": NodeKind(_is_object_id, _user),
    "Strategy": NodeKind(_is_object_id, _strategy),
    "Trade": NodeKind(_is_sql_id, _trade),
    "ActivityEvent": NodeKind(_is_sql_id, _event),
}


def is_key(kind: str, key: str) -> bool:
    """Whether `key` can name an object of `kind` (a kind not in `KINDS` has no keys)."""
    found = KINDS.get(kind)
    return found is not None and found.is_key(key)


async def find_nodes(
    ctx: Context, refs: Sequence[tuple[str, str]]
) -> list[NodeRecord | Exception | None]:
    """The objects named by (kind, key) pairs, in order: None for a missing one or one
    outside the viewer's scope, an exception for one whose source failed (it costs that
    object alone). Every load starts in the same tick, so each loader asks once."""
    loaders = ctx.loaders
    found = await asyncio.gather(
        *(KINDS[kind].load(loaders, key) for kind, key in refs), return_exceptions=True
    )
    results: list[NodeRecord | Exception | None] = []
    for item in found:
        if isinstance(item, BaseException) and not isinstance(item, Exception):
            raise item  # cancelled: not one object's failure
        results.append(item)
    return results
