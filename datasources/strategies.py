"""The strategies source: the `strategies` collection of MongoDB `strategy_db`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiodataloader import DataLoader
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from datasources import idempotency, outbox
from datasources._batch import Page, Scope, grouped, in_key_order, paginate
from datasources._fields import StoredField, field_reader, lower, store_fields, upper
from datasources._mongo import Document, MongoSource, now, to_object_id, to_object_ids, utc
from datasources.migrations import strategies as strategies_versions
from datasources.outbox import Event

COLLECTION = "strategies"
STATUSES = ("ACTIVE", "PAUSED", "STOPPED", "ERROR")
ENVIRONMENTS = ("LIVE", "TESTNET")
INDEXES = [
    IndexModel([("userId", ASCENDING)]),
    IndexModel([("userId", ASCENDING), ("name", ASCENDING)], unique=True),
    IndexModel([("userId", ASCENDING), ("status", ASCENDING)]),
]


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    """A strategy as stored; `status` and `environment` upper-case as in the API."""

    id: str
    user_id: str
    name: str
    code: str
    status: str
    container_id: str | None
    instrument: str
    broker: str
    environment: str
    config: Mapping[str, Any]
    last_action: str | None
    auto_reconnect: bool
    error_message: str | None
    error_count: int
    last_heartbeat: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StrategyPageKey:
    """One user's strategies page: an optional status filter, a size and a cursor."""

    user_id: str
    status: str | None
    first: int
    after: str | None = None


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """How many strategies a user has in each status."""

    by_status: Mapping[str, int] = field(default_factory=dict)

    def count(self, status: str | None = None) -> int:
        """The count in `status`, or the total when `status` is None."""
        if status is None:
            return sum(self.by_status.values())
        return self.by_status.get(status, 0)


def _object(value: Any) -> dict[str, Any]:
    return dict(value or {})


def _text(value: Any) -> str:
    # A strategy stored before instrument and broker were required has none (or a null):
    # it reads as "" (not set), so the API's non-null fields hold for every document.
    return "" if value is None else str(value)


MAX_NAME = 100
MAX_INSTRUMENT = 64
MAX_CODE_BYTES = 256 * 1024
MAX_CONFIG_BYTES = 64 * 1024

FIELDS: tuple[StoredField, ...] = (
    StoredField("name", "name", "", editable=True, rule="text", limit=MAX_NAME),
    StoredField("code", "code", "", editable=True, runtime=True, rule="code", limit=MAX_CODE_BYTES),
    StoredField("status", "status", "STOPPED", load=upper, store=lower),
    StoredField("container_id", "containerId"),
    StoredField(
        "instrument",
        "instrument",
        "",
        load=_text,
        editable=True,
        runtime=True,
        rule="text",
        limit=MAX_INSTRUMENT,
    ),
    StoredField("broker", "broker", "", load=_text, editable=True, runtime=True, rule="broker"),
    StoredField(
        "environment",
        "environment",
        "TESTNET",
        load=upper,
        store=lower,
        editable=True,
        runtime=True,
        rule="environment",
    ),
    StoredField(
        "config",
        "config",
        load=_object,
        store=_object,
        editable=True,
        runtime=True,
        rule="json_object",
        limit=MAX_CONFIG_BYTES,
    ),
    StoredField("last_action", "lastAction"),
    StoredField("auto_reconnect", "autoReconnect", False, load=bool, editable=True, rule="bool"),
    StoredField("error_message", "errorMessage"),
    StoredField("error_count", "errorCount", 0, load=int),
    StoredField("last_heartbeat", "lastHeartbeat", load=utc),
)
BY_ATTR = {field.attr: field for field in FIELDS}
# Every stored field: what a deletion removes, leaving a tombstone.
_STORED = tuple(field.stored for field in FIELDS)
EDITABLE = tuple(field for field in FIELDS if field.editable)
_read_fields = field_reader(FIELDS)


def _record(doc: Document) -> StrategyRecord:
    created = utc(doc.get("createdAt")) or doc["_id"].generation_time
    return StrategyRecord(
        id=str(doc["_id"]),
        user_id=str(doc["userId"]),
        created_at=created,
        updated_at=utc(doc.get("updatedAt")) or created,
        **_read_fields(doc),
    )


def _owner_filter(user_ids: Sequence[str] | None) -> dict[str, Any]:
    # Every read goes through here or `_owned`: a deleted strategy's tombstone is never read.
    if user_ids is None:
        return {**outbox.LIVE}
    return {"userId": {"$in": to_object_ids(user_ids)}, **outbox.LIVE}


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Create the collection's indexes; a no-op when they exist."""
    await db[COLLECTION].create_indexes(INDEXES)


async def find_strategies(
    *, db: AsyncDatabase[Document], ids: Sequence[str], user_ids: Sequence[str] | None
) -> list[StrategyRecord]:
    """The strategies with these ids owned by one of `user_ids` (None: any owner)."""
    oids = to_object_ids(ids)
    if not oids:
        return []
    query = {"_id": {"$in": oids}, **_owner_filter(user_ids)}
    return [_record(doc) async for doc in db[COLLECTION].find(query)]


async def find_strategies_of_users(
    *,
    db: AsyncDatabase[Document],
    user_ids: Sequence[str],
    status: str | None,
    after: str | None,
    limit: int | None,
) -> list[StrategyRecord]:
    """The strategies of `user_ids`, newest first per user, after the cursor id if given.

    `limit` caps the rows returned in total, so pass it only for a single user.
    """
    query: dict[str, Any] = _owner_filter(user_ids)
    if status is not None:
        query["status"] = status.lower()
    if after is not None:
        query["_id"] = {"$lt": to_object_id(after)}
    cursor = db[COLLECTION].find(query).sort([("userId", ASCENDING), ("_id", DESCENDING)])
    if limit is not None:
        cursor = cursor.limit(limit)
    return [_record(doc) async for doc in cursor]


async def count_strategies_by_status(
    *, db: AsyncDatabase[Document], user_ids: Sequence[str]
) -> dict[str, StatusCounts]:
    """Per user, the number of strategies in each status (one aggregation for all users)."""
    pipeline: list[dict[str, Any]] = [
        {"$match": _owner_filter(user_ids)},
        {"$group": {"_id": {"user": "$userId", "status": "$status"}, "n": {"$sum": 1}}},
    ]
    counts: dict[str, dict[str, int]] = {uid: {} for uid in user_ids}
    async for row in await db[COLLECTION].aggregate(pipeline):
        per_user = counts.setdefault(str(row["_id"]["user"]), {})
        status = str(row["_id"]["status"]).upper()
        per_user[status] = per_user.get(status, 0) + int(row["n"])
    return {uid: StatusCounts(by_status) for uid, by_status in counts.items()}


async def insert_strategy(
    *,
    db: AsyncDatabase[Document],
    user_id: str,
    name: str,
    strategy_id: str | None = None,
    created_at: datetime | None = None,
    events: Sequence[Event] = (),
    **values: Any,
) -> StrategyRecord:
    """Insert a strategy in the platform's document shape; a duplicate name or id raises.

    `values` are record fields (`FIELDS`, by attribute); a field not given takes its
    default. `strategy_id` lets a caller choose the id beforehand, so that a retried
    insert of the same strategy collides with the first instead of creating a second.
    `events` are written with it (datasources/outbox.py).
    """
    values["name"] = name
    moment = created_at or now()
    doc: dict[str, Any] = {
        "_id": ObjectId(strategy_id) if strategy_id is not None else ObjectId(),
        "userId": ObjectId(user_id),
        **store_fields(FIELDS, values),
        "createdAt": moment,
        "updatedAt": moment,
        **outbox.carrying(events),
    }
    await db[COLLECTION].insert_one(doc)
    return _record(doc)


async def count_other_strategies(
    *, db: AsyncDatabase[Document], user_id: str, besides: str, limit: int
) -> int:
    """How many strategies `user_id` holds other than `besides` (counted up to `limit`)."""
    query = {**_owner_filter([user_id]), "_id": {"$ne": ObjectId(besides)}}
    return await db[COLLECTION].count_documents(query, limit=limit)


def _owned(strategy_id: str, user_id: str) -> dict[str, Any] | None:
    # An id that is not an ObjectId names no strategy: the filter matches nothing.
    oid, owner = to_object_id(strategy_id), to_object_id(user_id)
    if oid is None or owner is None:
        return None
    return {"_id": oid, "userId": owner, **outbox.LIVE}


def _status_in(statuses: Sequence[str]) -> dict[str, Any]:
    return {"status": {"$in": [status.lower() for status in statuses]}}


async def find_strategy(
    *, db: AsyncDatabase[Document], strategy_id: str, user_id: str
) -> StrategyRecord | None:
    """The strategy with this id if `user_id` owns it, read afresh (writes check with this)."""
    query = _owned(strategy_id, user_id)
    if query is None:
        return None
    doc = await db[COLLECTION].find_one(query)
    return _record(doc) if doc is not None else None


async def find_strategy_by_name(
    *, db: AsyncDatabase[Document], user_id: str, name: str
) -> StrategyRecord | None:
    """`user_id`'s strategy named exactly `name`, if there is one."""
    owner = to_object_id(user_id)
    if owner is None:
        return None
    doc = await db[COLLECTION].find_one({"userId": owner, "name": name})
    return _record(doc) if doc is not None else None


async def update_strategy(
    *,
    db: AsyncDatabase[Document],
    strategy_id: str,
    user_id: str,
    changes: Mapping[str, Any],
    only_in: Sequence[str] | None = None,
    named: str | None = None,
    events: Sequence[Event] = (),
) -> StrategyRecord | None:
    """Set `changes` (editable record fields, by attribute) and updatedAt in one write,
    with `events`.

    With `only_in` the write is a compare-and-set: it applies only while the
    status is one of these; with `named`, only while the strategy has that name.
    Returns the strategy as written, or None when no strategy of `user_id` matched. A
    duplicate name raises DuplicateKeyError.
    """
    unknown = set(changes) - {field.attr for field in EDITABLE}
    if unknown:
        raise ValueError(f"not editable strategy fields: {sorted(unknown)}")
    query = _owned(strategy_id, user_id)
    if query is None:
        return None
    if only_in is not None:
        query.update(_status_in(only_in))
    if named is not None:
        query["name"] = named
    values = {BY_ATTR[name].stored: BY_ATTR[name].store(value) for name, value in changes.items()}
    doc = await db[COLLECTION].find_one_and_update(
        query,
        {"$set": {**values, "updatedAt": now()}, **outbox.pushing(events)},
        return_document=ReturnDocument.AFTER,
    )
    return _record(doc) if doc is not None else None


async def change_status(
    *,
    db: AsyncDatabase[Document],
    strategy_id: str,
    user_id: str,
    from_status: str,
    to_status: str,
    action: str,
    name: str | None = None,
    broker: str | None = None,
    clear_error: bool = False,
    events: Sequence[Event] = (),
) -> StrategyRecord | None:
    """Compare-and-set the status: move it from `from_status` to `to_status`, atomically.

    The filter names the one status left, so the caller knows exactly which
    edge was taken (a pre-image may be stale on some servers; the filter is
    not). Concurrent changes of one strategy serialize: each sees the status
    the previous one left. `name` and `broker`, when given, must also still be the
    strategy's broker (the one whose credentials the caller checked). Sets
    lastAction to `action` and updatedAt, and with `clear_error` empties
    errorMessage; `events` are written with the change. Returns the strategy as
    written, or None when nothing matched (the caller reads the strategy to say why).
    """
    query = _owned(strategy_id, user_id)
    if query is None:
        return None
    query["status"] = from_status.lower()
    if name is not None:
        query["name"] = name
    if broker is not None:
        query["broker"] = broker
    values: dict[str, Any] = {"status": to_status.lower(), "lastAction": action, "updatedAt": now()}
    if clear_error:
        values["errorMessage"] = None
    doc = await db[COLLECTION].find_one_and_update(
        query, {"$set": values, **outbox.pushing(events)}, return_document=ReturnDocument.AFTER
    )
    return _record(doc) if doc is not None else None


async def delete_strategy(
    *,
    db: AsyncDatabase[Document],
    strategy_id: str,
    user_id: str,
    name: str,
    only_in: Sequence[str],
    events: Sequence[Event],
) -> StrategyRecord | None:
    """Delete the strategy if `user_id` owns it, it is still called `name` (the name its
    events record) and its status is one of `only_in`.

    In the same write its content goes and `events` are written: the document is left a
    tombstone until they are delivered (datasources/outbox.py). Returns the deleted
    strategy, or None when nothing matched. Its trades and metrics live in other
    databases and are left as they are.
    """
    query = _owned(strategy_id, user_id)
    if query is None:
        return None
    content = {stored: "" for stored in _STORED if stored != "name"}
    doc = await db[COLLECTION].find_one_and_update(
        {**query, "name": name, **_status_in(only_in)},
        {
            # A tombstone's name is no string, so it never takes a name from a new strategy.
            "$set": {outbox.TOMBSTONE: True, "name": {"deleted": strategy_id}},
            "$unset": content,
            **outbox.pushing(events),
        },
        return_document=ReturnDocument.BEFORE,
    )
    return _record(doc) if doc is not None else None


class StrategiesSource(MongoSource):
    """The strategies source: `strategies` and its idempotency keys in `strategy_db`."""

    name = "strategies"
    migrations = strategies_versions.MIGRATIONS
    outbox_collections = (COLLECTION,)

    async def forget_user(self, user_id: str) -> None:
        """Remove the user's strategies and idempotency keys."""
        await delete_user_strategies(db=self.db, user_id=user_id)
        await idempotency.delete_user_keys(db=self.db, user_id=user_id)

    def loaders(self, scope: Scope) -> StrategyLoaders:
        """The strategies source's loaders for one request."""
        return StrategyLoaders(self, scope)


class StrategyLoaders:
    """The strategies source's per-request loaders."""

    def __init__(self, source: MongoSource, scope: Scope) -> None:
        self._source = source
        self._scope = scope
        self.by_id: DataLoader[str, StrategyRecord | None] = source.loader(self._load_by_id)
        self.page: DataLoader[StrategyPageKey, Page[StrategyRecord]] = source.loader(
            self._load_pages
        )
        self.counts: DataLoader[str, StatusCounts] = source.loader(self._load_counts)

    async def _load_by_id(self, keys: list[str]) -> list[StrategyRecord | None]:
        owners = self._scope.owners
        rows = await self._source.run(
            lambda db: find_strategies(db=db, ids=keys, user_ids=owners), kind="lookup"
        )
        return in_key_order(keys, rows, lambda strategy: strategy.id)

    async def _load_pages(self, keys: list[StrategyPageKey]) -> list[Page[StrategyRecord]]:
        # Keys that differ only in their user share one query.
        pages: dict[StrategyPageKey, Page[StrategyRecord]] = {}
        for (status, first, after), group in grouped(
            keys, lambda key: (key.status, key.first, key.after)
        ).items():
            users = self._scope.visible(key.user_id for key in group)
            rows: list[StrategyRecord] = []
            if users:
                limit = first + 1 if len(users) == 1 else None
                rows = await self._strategies_of(users, status=status, after=after, limit=limit)
            by_user = grouped(rows, lambda strategy: strategy.user_id)
            for key in group:
                pages[key] = paginate(by_user.get(key.user_id, []), key.first)
        return [pages[key] for key in keys]

    async def _strategies_of(
        self, users: list[str], *, status: str | None, after: str | None, limit: int | None
    ) -> list[StrategyRecord]:
        return await self._source.run(
            lambda db: find_strategies_of_users(
                db=db, user_ids=users, status=status, after=after, limit=limit
            ),
            kind="lookup",
        )

    async def _load_counts(self, keys: list[str]) -> list[StatusCounts]:
        users = self._scope.visible(keys)
        counts: dict[str, StatusCounts] = {}
        if users:
            counts = await self._source.run(
                lambda db: count_strategies_by_status(db=db, user_ids=users), kind="aggregate"
            )
        return [counts.get(key, StatusCounts()) for key in keys]


# Account deletion (see resolvers/deletion.py).


async def delete_user_strategies(*, db: AsyncDatabase[Document], user_id: str) -> int:
    """Remove every strategy of a user; idempotent. Returns how many were removed."""
    oid = to_object_id(user_id)
    if oid is None:
        return 0
    result = await db[COLLECTION].delete_many({"userId": oid})
    return result.deleted_count
