"""Documents imported from an existing platform (gateway/imports/): the users and strategies
sources' documents built from their field tables with the ids and times they had, written
only where absent, the reads an import checks itself with, and its checkpoints; and the
trades an import writes, each recorded under its legacy id in the same transaction
(`imported_trades`), so that no rerun or resumed run writes one twice.

Credentials documents are built by `credentials_document`, which takes the plaintext and
a `SecretBox` and seals every secret field as `credentials.upsert_credentials` does, so no
import can write one in plaintext.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources import credentials, outbox, strategies, trades, users
from datasources._fields import store_fields
from datasources._mongo import Document, now, to_object_ids
from datasources._sql import Money
from gateway.core.crypto import SecretBox

CHECKPOINTS = "imports"
_DUPLICATE_KEY = 11000
# Keys per statement: well within SQLite's bound-parameter limit.
_CHUNK = 500

# The import's own bookkeeping in the trades database, beside (not part of) the trades
# source's tables: which legacy trade became which trade. Created by the import that needs
# it; the source's migrations neither make nor check it.
_bookkeeping = MetaData()
imported_trades = Table(
    "imported_trades",
    _bookkeeping,
    Column("platform", String(32), primary_key=True),
    Column("legacy_id", String(255), primary_key=True),
    Column("trade_id", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user already in the users source: its id and email."""

    id: str
    email: str


@dataclass(frozen=True, slots=True)
class StoredStrategy:
    """A strategy already in the strategies source: its id, owner and name."""

    id: str
    user_id: str
    name: str


def user_document(
    *, user_id: str, created_at: datetime, updated_at: datetime, **values: Any
) -> Document:
    """A `users` document with this id and these times; `values` are `users.FIELDS` by
    attribute (the email normalised), a field not given takes its default."""
    values["email"] = users.normalize_email(values["email"])
    return {
        "_id": ObjectId(user_id),
        **store_fields(users.FIELDS, values),
        "createdAt": created_at,
        "updatedAt": updated_at,
    }


def strategy_document(
    *, strategy_id: str, user_id: str, created_at: datetime, updated_at: datetime, **values: Any
) -> Document:
    """A `strategies` document with this id, owner and times; `values` are
    `strategies.FIELDS` by attribute, a field not given takes its default."""
    return {
        "_id": ObjectId(strategy_id),
        "userId": ObjectId(user_id),
        **store_fields(strategies.FIELDS, values),
        "createdAt": created_at,
        "updatedAt": updated_at,
    }


def credentials_document(
    *, box: SecretBox, user_id: str, broker: str, values: Mapping[str, str], created_at: datetime
) -> Document:
    """A `credentials` document of a user: `values` holds `clientId` and the secrets in
    plaintext; every secret is sealed by `box` for this user and field, and the API key's
    masked hint stored beside it, as `credentials.upsert_credentials` stores them."""
    unknown = set(values) - {credentials.CLIENT_ID, *credentials.SECRET_FIELDS}
    if unknown:
        raise ValueError(f"unknown credential fields: {sorted(unknown)}")
    doc: Document = {"userId": ObjectId(user_id), "broker": broker}
    for name, value in values.items():
        if name == credentials.CLIENT_ID:
            doc[name] = value
        else:
            doc[name] = box.seal(value, user_id=user_id, field=name)
    if hint := credentials.mask_hint(values.get("apiKey")):
        doc[credentials.API_KEY_HINT] = hint
    return {**doc, "createdAt": created_at, "updatedAt": created_at}


async def insert_absent(
    *, db: AsyncDatabase[Document], collection: str, documents: Sequence[Document]
) -> int:
    """Insert the documents whose keys are not taken; returns how many were inserted.

    A document whose `_id` (or other unique key) is taken is left out, as an import run
    again (or resumed) finds what it wrote before: the caller checks what it expected.
    """
    if not documents:
        return 0
    try:
        result = await db[collection].insert_many(list(documents), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        return int(exc.details.get("nInserted", 0))
    return len(result.inserted_ids)


async def find_stored_users(
    *, db: AsyncDatabase[Document], ids: Sequence[str], emails: Sequence[str]
) -> list[StoredUser]:
    """The users with one of these ids or (normalised) emails."""
    # Two indexed queries, not one `$or`: the embedded server scans the collection for that.
    queries = (
        {"_id": {"$in": to_object_ids(ids)}},
        {"email": {"$in": [users.normalize_email(email) for email in emails]}},
    )
    found: dict[str, StoredUser] = {}
    for query in queries:
        async for doc in db[users.COLLECTION].find(query, {"email": 1}):
            found[str(doc["_id"])] = StoredUser(str(doc["_id"]), str(doc.get("email")))
    return list(found.values())


async def find_stored_strategies(
    *, db: AsyncDatabase[Document], ids: Sequence[str], user_ids: Sequence[str]
) -> list[StoredStrategy]:
    """The live strategies with one of these ids or owned by one of `user_ids`."""
    queries = (
        {"_id": {"$in": to_object_ids(ids)}, **outbox.LIVE},
        {"userId": {"$in": to_object_ids(user_ids)}, **outbox.LIVE},
    )
    found: dict[str, StoredStrategy] = {}
    for query in queries:
        if not next(iter(query.values()))["$in"]:
            continue
        async for doc in db[strategies.COLLECTION].find(query, {"userId": 1, "name": 1}):
            strategy_id = str(doc["_id"])
            found[strategy_id] = StoredStrategy(
                strategy_id, str(doc["userId"]), str(doc.get("name"))
            )
    return list(found.values())


async def find_sealed_credentials(
    *, db: AsyncDatabase[Document], user_ids: Sequence[str]
) -> dict[str, Document]:
    """Per user id, the stored credentials document of each of `user_ids` that has one:
    broker, clientId and the sealed secrets (for an import to check it stored what it
    read; nothing here opens them)."""
    projection = dict.fromkeys(("userId", "broker", credentials.CLIENT_ID), 1)
    projection.update(dict.fromkeys(credentials.SECRET_FIELDS, 1))
    query = {"userId": {"$in": to_object_ids(user_ids)}, **outbox.LIVE}
    cursor = db[credentials.COLLECTION].find(query, projection)
    return {str(doc["userId"]): doc async for doc in cursor}


async def read_checkpoint(*, db: AsyncDatabase[Document], key: str) -> Mapping[str, Any] | None:
    """The checkpoint an import saved under `key`, or None."""
    return await db[CHECKPOINTS].find_one({"_id": key})


async def save_checkpoint(
    *, db: AsyncDatabase[Document], key: str, values: Mapping[str, Any]
) -> None:
    """Save (replace) the checkpoint of an import."""
    await db[CHECKPOINTS].replace_one(
        {"_id": key}, {"_id": key, **values, "savedAt": now()}, upsert=True
    )


async def drop_checkpoint(*, db: AsyncDatabase[Document], key: str) -> None:
    """Forget the checkpoint of an import (it finished)."""
    await db[CHECKPOINTS].delete_one({"_id": key})


# Trades (the trades database): each written with its legacy id, in one transaction.


@dataclass(frozen=True, slots=True)
class ImportedTotals:
    """One user's imported trades in the trades source: how many, and their pnl and fees
    summed exactly (a NULL pnl counts as 0)."""

    trades: int = 0
    pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


async def ensure_imported_trades(*, conn: AsyncConnection) -> None:
    """Create the `imported_trades` table where it is missing."""
    await conn.run_sync(lambda sync: _bookkeeping.create_all(sync, checkfirst=True))


async def has_imported_trades(*, conn: AsyncConnection) -> bool:
    """Whether the `imported_trades` table exists (a dry run on a new database: it does not)."""
    return bool(await conn.run_sync(lambda sync: inspect(sync).has_table(imported_trades.name)))


async def find_imported_trades(
    *, conn: AsyncConnection, platform: str, legacy_ids: Sequence[str]
) -> dict[str, int]:
    """Per legacy id of `platform` already imported, the id of the trade it became."""
    found: dict[str, int] = {}
    for start in range(0, len(legacy_ids), _CHUNK):
        chunk = list(legacy_ids[start : start + _CHUNK])
        rows = await conn.execute(
            select(imported_trades.c.legacy_id, imported_trades.c.trade_id).where(
                imported_trades.c.platform == platform, imported_trades.c.legacy_id.in_(chunk)
            )
        )
        found.update({legacy_id: int(trade_id) for legacy_id, trade_id in rows})
    return found


async def insert_imported_trades(
    *, conn: AsyncConnection, platform: str, rows: Sequence[tuple[str, Mapping[str, Any]]]
) -> int:
    """Insert the trades (record fields, as `trades.insert_trades` takes them) whose legacy
    ids are not imported yet, and record each under its legacy id, within the caller's
    transaction; returns how many were inserted. A concurrent import of the same trade
    makes the transaction fail on the bookkeeping key: nothing of it stays."""
    present = await find_imported_trades(
        conn=conn, platform=platform, legacy_ids=[legacy_id for legacy_id, _ in rows]
    )
    todo = [(legacy_id, row) for legacy_id, row in rows if legacy_id not in present]
    if not todo:
        return 0
    statement = insert(trades.trades).returning(trades.trades.c.id, sort_by_parameter_order=True)
    result = await conn.execute(statement, [store_fields(trades.FIELDS, row) for _, row in todo])
    ids = [int(trade_id) for (trade_id,) in result]
    await conn.execute(
        insert(imported_trades),
        [
            {"platform": platform, "legacy_id": legacy_id, "trade_id": trade_id}
            for (legacy_id, _), trade_id in zip(todo, ids, strict=True)
        ],
    )
    return len(todo)


async def imported_trade_totals(
    *, conn: AsyncConnection, platform: str
) -> dict[str, ImportedTotals]:
    """Per user, the trades of `platform`'s import still in the trades source: their count
    and exact sums of pnl and fees (what an import verifies against the legacy side)."""
    t = trades.trades
    query = (
        select(
            t.c.user_id,
            func.count(),
            func.sum(func.coalesce(t.c.pnl, 0, type_=Money()), type_=Money()),
            func.sum(t.c.fees, type_=Money()),
        )
        .select_from(t.join(imported_trades, imported_trades.c.trade_id == t.c.id))
        .where(imported_trades.c.platform == platform)
        .group_by(t.c.user_id)
    )
    return {
        user_id: ImportedTotals(int(n), pnl or Decimal(0), fees or Decimal(0))
        for user_id, n, pnl, fees in await conn.execute(query)
    }


async def drop_imported_trades(*, conn: AsyncConnection) -> None:
    """Drop the `imported_trades` table (tests only: a later import writes every trade
    again)."""
    await conn.run_sync(lambda sync: _bookkeeping.drop_all(sync, checkfirst=True))
