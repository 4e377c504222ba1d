"""The users source: the `users` collection of MongoDB `user_db`, its queries and loaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiodataloader import DataLoader
from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from datasources._batch import Scope, in_key_order
from datasources._guard import guard
from datasources._mongo import Document, now, to_object_id, to_object_ids, utc

SOURCE = "users"
COLLECTION = "users"
# Default index names (`email_1`, ...), as Mongoose creates them, so existing indexes match.
INDEXES = [IndexModel([("email", ASCENDING)], unique=True)]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as stored; `password_hash` never leaves the gateway."""

    id: str
    email: str
    password_hash: str
    first_name: str
    last_name: str
    phone: str | None
    role: str
    token_version: int
    created_at: datetime
    updated_at: datetime


def _record(doc: Document) -> UserRecord:
    created = utc(doc.get("createdAt")) or doc["_id"].generation_time
    return UserRecord(
        id=str(doc["_id"]),
        email=doc["email"],
        password_hash=doc.get("password", ""),
        first_name=doc.get("firstName", ""),
        last_name=doc.get("lastName", ""),
        phone=doc.get("phone"),
        role=str(doc.get("role", "user")).upper(),
        token_version=int(doc.get("tokenVersion", 0)),
        created_at=created,
        updated_at=utc(doc.get("updatedAt")) or created,
    )


def normalize_email(email: str) -> str:
    """Emails are stored and compared trimmed and lower-case."""
    return email.strip().lower()


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Create the collection's indexes; a no-op when they exist."""
    await db[COLLECTION].create_indexes(INDEXES)


async def find_users(*, db: AsyncDatabase[Document], ids: Sequence[str]) -> list[UserRecord]:
    """The users with these ids, in any order; unknown or malformed ids are skipped."""
    oids = to_object_ids(ids)
    if not oids:
        return []
    return [_record(doc) async for doc in db[COLLECTION].find({"_id": {"$in": oids}})]


async def find_user_by_email(*, db: AsyncDatabase[Document], email: str) -> UserRecord | None:
    """The user with this email (normalized before the lookup), or None."""
    doc = await db[COLLECTION].find_one({"email": normalize_email(email)})
    return _record(doc) if doc else None


async def insert_user(
    *,
    db: AsyncDatabase[Document],
    email: str,
    password_hash: str,
    first_name: str,
    last_name: str,
    phone: str | None,
    role: str = "USER",
) -> UserRecord:
    """Insert a new user; a taken email raises the driver's DuplicateKeyError."""
    moment = now()
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "email": normalize_email(email),
        "password": password_hash,
        "firstName": first_name,
        "lastName": last_name,
        "phone": phone,
        "role": role.lower(),
        "tokenVersion": 0,
        "createdAt": moment,
        "updatedAt": moment,
    }
    await db[COLLECTION].insert_one(doc)
    return _record(doc)


async def update_password_hash(
    *, db: AsyncDatabase[Document], user_id: str, password_hash: str
) -> None:
    """Replace a user's stored hash (used when Argon2 parameters change)."""
    await db[COLLECTION].update_one(
        {"_id": ObjectId(user_id)}, {"$set": {"password": password_hash, "updatedAt": now()}}
    )


class UserLoaders:
    """The users source's per-request loaders."""

    def __init__(self, db: AsyncDatabase[Document], scope: Scope, timeout: float) -> None:
        self._db = db
        self._scope = scope
        self._timeout = timeout
        self.by_id: DataLoader[str, UserRecord | None] = DataLoader(self._load_by_id)

    async def _load_by_id(self, keys: list[str]) -> list[UserRecord | None]:
        visible = self._scope.visible(keys)
        async with guard(SOURCE, timeout=self._timeout):
            rows = await find_users(db=self._db, ids=visible) if visible else []
        return in_key_order(keys, rows, lambda user: user.id)


# Account deletion (see gateway/deletion.py).


async def mark_user_deleting(*, db: AsyncDatabase[Document], user_id: str) -> bool:
    """Mark a user as being deleted and revoke its access tokens; False if it is gone."""
    oid = to_object_id(user_id)
    if oid is None:
        return False
    moment = now()
    result = await db[COLLECTION].update_one(
        {"_id": oid, "deletingAt": None},
        {"$set": {"deletingAt": moment, "updatedAt": moment}, "$inc": {"tokenVersion": 1}},
    )
    if result.matched_count:
        return True
    return await db[COLLECTION].count_documents({"_id": oid}, limit=1) > 0


async def find_deleting_user_ids(*, db: AsyncDatabase[Document]) -> list[str]:
    """Users marked as being deleted (a deletion interrupted before its job was recorded)."""
    cursor = db[COLLECTION].find({"deletingAt": {"$ne": None}}, {"_id": 1})
    return [str(doc["_id"]) async for doc in cursor]


async def delete_user(*, db: AsyncDatabase[Document], user_id: str) -> None:
    """Remove a user's document and its refresh tokens; idempotent."""
    oid = to_object_id(user_id)
    await db["refresh_tokens"].delete_many({"userId": {"$in": [user_id, oid]}})
    if oid is not None:
        await db[COLLECTION].delete_one({"_id": oid})
