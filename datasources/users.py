"""The users source: the `users` collection of MongoDB `user_db`, its queries and loaders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiodataloader import DataLoader
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from datasources import outbox, refresh_tokens
from datasources._batch import Page, Scope, in_key_order, paginate
from datasources._fields import StoredField, field_reader, lower, store_fields, upper
from datasources._mongo import Document, MongoSource, now, to_object_id, to_object_ids, utc
from datasources.migrations import users as users_versions
from datasources.outbox import Event

COLLECTION = "users"
# Default index names (`email_1`, ...), as Mongoose creates them, so existing indexes match.
INDEXES = [IndexModel([("email", ASCENDING)], unique=True)]
ROLES = ("USER", "ADMIN")
MAX_NAME = 100
# A user being deleted (account deletion sets `deletingAt`) is nobody's to see or act as.
_NOT_DELETING: dict[str, Any] = {"deletingAt": None}


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
    deleting: bool = False


@dataclass(frozen=True, slots=True)
class UserPageKey:
    """One page of the users list (ADMIN): an optional search, a size and a cursor id."""

    search: str | None
    first: int
    after: str | None = None


# A user's fields, defined once (datasources/_fields.py). The profile fields a user may
# change are the editable ones; the hash and the token version are never shown.
FIELDS: tuple[StoredField, ...] = (
    StoredField("email", "email", required=True),
    StoredField("password_hash", "password", "", shown=False),
    StoredField("first_name", "firstName", "", editable=True, rule="name", limit=MAX_NAME),
    StoredField("last_name", "lastName", "", editable=True, rule="name", limit=MAX_NAME),
    StoredField("phone", "phone", editable=True, rule="phone"),
    StoredField("role", "role", "USER", load=upper, store=lower),
    StoredField("token_version", "tokenVersion", 0, load=int, shown=False),
)
BY_ATTR = {field.attr: field for field in FIELDS}
EDITABLE = tuple(field for field in FIELDS if field.editable)
_read_fields = field_reader(FIELDS)


def _record(doc: Document) -> UserRecord:
    created = utc(doc.get("createdAt")) or doc["_id"].generation_time
    return UserRecord(
        id=str(doc["_id"]),
        created_at=created,
        updated_at=utc(doc.get("updatedAt")) or created,
        deleting=doc.get("deletingAt") is not None,
        **_read_fields(doc),
    )


def normalize_email(email: str) -> str:
    """Emails are stored and compared trimmed and lower-case."""
    return email.strip().lower()


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Create the indexes of `users` and of its `refresh_tokens`; a no-op when they exist."""
    await db[COLLECTION].create_indexes(INDEXES)
    await refresh_tokens.ensure_indexes(db=db)


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
    user_id: str | None = None,
    events: Sequence[Event] = (),
) -> UserRecord:
    """Insert a new user (under `user_id` if given), with `events`; a taken email raises the
    driver's DuplicateKeyError."""
    moment = now()
    values = {
        "email": normalize_email(email),
        "password_hash": password_hash,
        "first_name": first_name,
        "last_name": last_name,
        "phone": phone,
        "role": role,
    }
    doc: dict[str, Any] = {
        "_id": ObjectId(user_id) if user_id is not None else ObjectId(),
        **store_fields(FIELDS, values),
        "createdAt": moment,
        "updatedAt": moment,
        **outbox.carrying(events),
    }
    await db[COLLECTION].insert_one(doc)
    return _record(doc)


async def update_password_hash(
    *, db: AsyncDatabase[Document], user_id: str, replacing: str, password_hash: str
) -> bool:
    """Replace a user's stored hash by a stronger one of the same password (a bcrypt hash
    upgraded to Argon2id, or Argon2 parameters changed); False when it is not stored any
    more (a compare-and-set: a password changed meanwhile is never overwritten).

    `updatedAt` and `tokenVersion` stay: the password, and every session, are the same.
    """
    oid = to_object_id(user_id)
    if oid is None:
        return False
    result = await db[COLLECTION].update_one(
        {"_id": oid, "password": replacing}, {"$set": {"password": password_hash}}
    )
    return result.modified_count == 1


def _list_filter(*, search: str | None, user_ids: Sequence[str] | None) -> dict[str, Any]:
    query: dict[str, Any] = dict(_NOT_DELETING)
    if user_ids is not None:
        query["_id"] = {"$in": to_object_ids(user_ids)}
    if search:
        # Escaped, so the input is matched as plain text and never runs as a pattern.
        pattern = {"$regex": re.escape(search), "$options": "i"}
        query["$or"] = [{field: pattern} for field in ("email", "firstName", "lastName")]
    return query


async def find_user_page(
    *,
    db: AsyncDatabase[Document],
    search: str | None,
    after: str | None,
    limit: int,
    user_ids: Sequence[str] | None = None,
) -> list[UserRecord]:
    """Users not being deleted, newest first, whose email or names contain `search`
    (case-insensitive), after the cursor id if given; only `user_ids` unless None."""
    query = _list_filter(search=search, user_ids=user_ids)
    if after is not None:
        query.setdefault("_id", {})["$lt"] = to_object_id(after)
    cursor = db[COLLECTION].find(query).sort([("_id", DESCENDING)]).limit(limit)
    return [_record(doc) async for doc in cursor]


async def count_users(
    *, db: AsyncDatabase[Document], search: str | None, user_ids: Sequence[str] | None = None
) -> int:
    """How many users `find_user_page` would list over all its pages."""
    return await db[COLLECTION].count_documents(_list_filter(search=search, user_ids=user_ids))


def _live_user(user_id: str, token_version: int) -> dict[str, Any] | None:
    oid = to_object_id(user_id)
    if oid is None:
        return None
    return {"_id": oid, "tokenVersion": token_version, **_NOT_DELETING}


async def update_user_profile(
    *,
    db: AsyncDatabase[Document],
    user_id: str,
    token_version: int,
    changes: Mapping[str, str | None],
    events: Sequence[Event] = (),
) -> UserRecord | None:
    """Set profile fields (the editable `FIELDS`, by attribute) and bump updatedAt, with
    `events`.

    Applies only while the user exists, is not being deleted and is still at
    `token_version` (the caller's token is not revoked); None otherwise.
    """
    editable = {field.attr: field for field in EDITABLE}
    unknown = set(changes) - set(editable)
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    query = _live_user(user_id, token_version)
    if query is None:
        return None
    doc = await db[COLLECTION].find_one_and_update(
        query,
        {
            "$set": {
                **{editable[name].stored: editable[name].store(v) for name, v in changes.items()},
                "updatedAt": now(),
            },
            **outbox.pushing(events),
        },
        return_document=ReturnDocument.AFTER,
    )
    return _record(doc) if doc else None


async def replace_password(
    *,
    db: AsyncDatabase[Document],
    user_id: str,
    token_version: int,
    password_hash: str,
    events: Sequence[Event] = (),
) -> UserRecord | None:
    """Store a new password hash and bump tokenVersion, revoking every access token; with
    `events`.

    A compare-and-set on `token_version`: applies only while the user exists, is
    not being deleted and no other change revoked the caller's token; None otherwise.
    """
    query = _live_user(user_id, token_version)
    if query is None:
        return None
    doc = await db[COLLECTION].find_one_and_update(
        query,
        {
            "$set": {"password": password_hash, "updatedAt": now()},
            "$inc": {"tokenVersion": 1},
            **outbox.pushing(events),
        },
        return_document=ReturnDocument.AFTER,
    )
    return _record(doc) if doc else None


async def set_user_role(*, db: AsyncDatabase[Document], email: str, role: str) -> UserRecord | None:
    """Give the user with this email `role` (USER or ADMIN); None when there is no such user."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    doc = await db[COLLECTION].find_one_and_update(
        {"email": normalize_email(email)},
        {"$set": {"role": role.lower(), "updatedAt": now()}},
        return_document=ReturnDocument.AFTER,
    )
    return _record(doc) if doc else None


class UsersSource(MongoSource):
    """The users source: `users`, `refresh_tokens` and `account_deletions` in `user_db`."""

    name = "users"
    holds_accounts = True
    migrations = users_versions.MIGRATIONS
    outbox_collections = (COLLECTION, refresh_tokens.COLLECTION)

    async def forget_user(self, user_id: str) -> None:
        """Remove the user's document and its refresh tokens."""
        await delete_user(db=self.db, user_id=user_id)

    def loaders(self, scope: Scope) -> UserLoaders:
        """The users source's loaders for one request."""
        return UserLoaders(self, scope)


class UserLoaders:
    """The users source's per-request loaders."""

    def __init__(self, source: MongoSource, scope: Scope) -> None:
        self._source = source
        self._scope = scope
        self.by_id: DataLoader[str, UserRecord | None] = source.loader(self._load_by_id)
        self.page: DataLoader[UserPageKey, Page[UserRecord]] = source.loader(self._load_pages)
        # Keyed by search text; "" counts every user (a loader key cannot be None).
        self.count: DataLoader[str, int] = source.loader(self._load_counts)

    async def _load_by_id(self, keys: list[str]) -> list[UserRecord | None]:
        visible = self._scope.visible(keys)
        rows = (
            await self._source.run(lambda db: find_users(db=db, ids=visible), kind="lookup")
            if visible
            else []
        )
        return in_key_order(keys, rows, lambda user: user.id)

    async def _load_pages(self, keys: list[UserPageKey]) -> list[Page[UserRecord]]:
        # Pages differ in search and cursor, so each distinct key is its own query.
        async def fetch(db: AsyncDatabase[Document]) -> dict[UserPageKey, Page[UserRecord]]:
            pages: dict[UserPageKey, Page[UserRecord]] = {}
            for key in dict.fromkeys(keys):
                rows = await find_user_page(
                    db=db,
                    search=key.search,
                    after=key.after,
                    limit=key.first + 1,
                    user_ids=self._scope.owners,
                )
                pages[key] = paginate(rows, key.first)
            return pages

        pages = await self._source.run(fetch, kind="lookup")
        return [pages[key] for key in keys]

    async def _load_counts(self, keys: list[str]) -> list[int]:
        async def fetch(db: AsyncDatabase[Document]) -> dict[str, int]:
            return {
                search: await count_users(db=db, search=search or None, user_ids=self._scope.owners)
                for search in dict.fromkeys(keys)
            }

        counts = await self._source.run(fetch, kind="aggregate")
        return [counts[key] for key in keys]


# Account deletion (see resolvers/deletion.py).


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
    await refresh_tokens.delete_user_refresh_tokens(db=db, user_id=user_id)
    oid = to_object_id(user_id)
    if oid is not None:
        await db[COLLECTION].delete_one({"_id": oid})
