"""Trusted operations (`persisted_operations`, users database): the documents a client
build registered with `gateway operations add`, by id and by the SHA-256 of their body.

Kept in the database every `gateway serve` process (and worker) reads, so all of them see
the same list and it survives restarts; Redis, being a cache that may evict, is no place
for an allow-list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from datasources._mongo import Document, now, utc

COLLECTION = "persisted_operations"
_DUPLICATE_KEY = 11000


@dataclass(frozen=True, slots=True)
class PersistedOperation:
    """One trusted operation: its id (as the client sends it), the SHA-256 of its body, the
    body, and the operation's name and type when the manifest gave them."""

    id: str
    sha256: str
    body: str
    name: str | None = None
    type: str | None = None
    added_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What `save_operations` did: ids added and ids already present with the same body; or,
    when any id is already present with another body, those ids and nothing saved."""

    added: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


def _operation(doc: Document) -> PersistedOperation:
    return PersistedOperation(
        id=str(doc["_id"]),
        sha256=str(doc["sha256"]),
        body=str(doc["body"]),
        name=doc.get("name"),
        type=doc.get("type"),
        added_at=utc(doc.get("addedAt")),
    )


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Index the operations in the order they were added: each gateway process reads them
    all in that order, up to a maximum, and looks them up in memory (by id and by the
    SHA-256 of their body), never here."""
    await db[COLLECTION].create_index([("addedAt", ASCENDING), ("_id", ASCENDING)], name="added")


async def save_operations(
    *, db: AsyncDatabase[Document], operations: Sequence[PersistedOperation]
) -> SaveResult:
    """Add `operations`; the same id with the same body again changes nothing. An id already
    present with another body is a conflict: then nothing at all is saved (an id, once
    shipped in a client, must keep meaning one document).

    The new ones are inserted, never upserted: an id that another run inserted meanwhile
    fails on the unique `_id` (duplicate key) and is compared with what that run stored,
    so of two concurrent runs with different bodies for one id exactly one wins and the
    other reports the conflict and takes back what it inserted itself."""
    ids = [operation.id for operation in operations]
    present = await _bodies(db=db, ids=ids)
    conflicts = tuple(op.id for op in operations if op.id in present and present[op.id] != op.body)
    if conflicts:
        return SaveResult(conflicts=conflicts)
    new = [operation for operation in operations if operation.id not in present]
    duplicates: set[str] = set()
    if new:
        batch = ObjectId()  # marks this run's inserts, so only they are taken back
        moment = now()
        try:
            await db[COLLECTION].insert_many(
                [
                    {
                        "_id": op.id,
                        "sha256": op.sha256,
                        "body": op.body,
                        "name": op.name,
                        "type": op.type,
                        "addedAt": moment,
                        "batch": batch,
                    }
                    for op in new
                ],
                ordered=False,
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise
            duplicates = {new[error["index"]].id for error in errors}
        if duplicates:
            raced = await _bodies(db=db, ids=sorted(duplicates))
            conflicts = tuple(
                op.id for op in new if op.id in duplicates and raced.get(op.id) != op.body
            )
            if conflicts:
                inserted = [op.id for op in new if op.id not in duplicates]
                await db[COLLECTION].delete_many({"_id": {"$in": inserted}, "batch": batch})
                return SaveResult(conflicts=conflicts)
    return SaveResult(
        added=tuple(op.id for op in new if op.id not in duplicates),
        unchanged=tuple(op.id for op in operations if op.id in present or op.id in duplicates),
    )


async def _bodies(*, db: AsyncDatabase[Document], ids: Sequence[str]) -> dict[str, str]:
    return {
        str(doc["_id"]): str(doc["body"])
        async for doc in db[COLLECTION].find({"_id": {"$in": list(ids)}}, {"body": 1})
    }


async def list_operations(
    *, db: AsyncDatabase[Document], limit: int | None = None
) -> list[PersistedOperation]:
    """Every trusted operation, oldest first; the first `limit` of them when given."""
    cursor = db[COLLECTION].find({}).sort([("addedAt", ASCENDING), ("_id", ASCENDING)])
    if limit is not None:
        cursor = cursor.limit(limit)
    return [_operation(doc) async for doc in cursor]


async def count_operations(*, db: AsyncDatabase[Document]) -> int:
    """How many trusted operations are stored."""
    return await db[COLLECTION].count_documents({})


async def remove_operations(*, db: AsyncDatabase[Document], ids: Sequence[str]) -> int:
    """Remove the trusted operations with these ids; how many there were."""
    result = await db[COLLECTION].delete_many({"_id": {"$in": list(ids)}})
    return result.deleted_count
