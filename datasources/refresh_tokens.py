"""Refresh tokens: the `refresh_tokens` collection of the users database (`user_db`).

Only a token's SHA-256 hash is stored. Each token belongs to a family (one
sign-in and the tokens rotated from it); a token is single use, and using one
twice revokes its whole family. Expired tokens are removed by a TTL index.

    token:  _id, tokenHash (unique), userId (ObjectId), familyId (ObjectId),
            tokenVersion (the user's at issue), createdAt, expiresAt (TTL),
            usedAt, revokedAt
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from datasources import outbox
from datasources._mongo import Document, now, to_object_id, utc
from datasources.outbox import Event

COLLECTION = "refresh_tokens"
INDEXES = [
    # Sparse, so documents written by other tools without a hash never collide on null.
    IndexModel([("tokenHash", ASCENDING)], unique=True, sparse=True),
    IndexModel([("familyId", ASCENDING)]),
    IndexModel([("userId", ASCENDING)]),
    # Mongo removes a token once its expiresAt has passed; the gateway never relies on
    # that for security (every lookup checks expiresAt itself), only for tidiness.
    IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0),
]


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """A stored refresh token (its hash, never the token)."""

    id: str
    user_id: str
    family_id: str
    token_version: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


def _record(doc: Document) -> RefreshTokenRecord:
    created = utc(doc.get("createdAt")) or now()
    return RefreshTokenRecord(
        id=str(doc["_id"]),
        user_id=str(doc["userId"]),
        family_id=str(doc["familyId"]),
        token_version=int(doc.get("tokenVersion", 0)),
        created_at=created,
        expires_at=utc(doc.get("expiresAt")) or created,
        used_at=utc(doc.get("usedAt")),
        revoked_at=utc(doc.get("revokedAt")),
    )


def _user_filter(user_id: str) -> dict[str, Any]:
    # Documents written by other tools may hold the id as a string.
    oid = to_object_id(user_id)
    return {"userId": {"$in": [user_id, oid] if oid is not None else [user_id]}}


def new_family_id() -> str:
    """The id of a new token family (one per sign-in)."""
    return str(ObjectId())


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Create the collection's indexes (the hash lookup, revocations, the TTL); idempotent."""
    await db[COLLECTION].create_indexes(INDEXES)


async def insert_refresh_token(
    *,
    db: AsyncDatabase[Document],
    token_hash: str,
    user_id: str,
    family_id: str,
    token_version: int,
    expires_at: datetime,
    events: Sequence[Event] = (),
) -> RefreshTokenRecord:
    """Store a new, unused refresh token of `family_id` by its hash, with `events` (the
    sign-in it starts)."""
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "tokenHash": token_hash,
        "userId": ObjectId(user_id),
        "familyId": ObjectId(family_id),
        "tokenVersion": token_version,
        "createdAt": now(),
        "expiresAt": expires_at,
        "usedAt": None,
        "revokedAt": None,
        **outbox.carrying(events),
    }
    await db[COLLECTION].insert_one(doc)
    return _record(doc)


async def consume_refresh_token(
    *, db: AsyncDatabase[Document], token_hash: str
) -> RefreshTokenRecord | None:
    """Mark the token used if it is unused, unrevoked and unexpired; None otherwise.

    One compare-and-set: of any number of concurrent calls with the same token,
    exactly one gets the record.
    """
    moment = now()
    doc = await db[COLLECTION].find_one_and_update(
        {
            "tokenHash": token_hash,
            "usedAt": None,
            "revokedAt": None,
            "expiresAt": {"$gt": moment},
        },
        {"$set": {"usedAt": moment}},
        return_document=ReturnDocument.AFTER,
    )
    return _record(doc) if doc else None


async def find_refresh_token(
    *, db: AsyncDatabase[Document], token_hash: str
) -> RefreshTokenRecord | None:
    """The stored token with this hash, whatever its state, or None."""
    doc = await db[COLLECTION].find_one({"tokenHash": token_hash})
    return _record(doc) if doc else None


async def revoke_family(*, db: AsyncDatabase[Document], family_id: str) -> int:
    """Revoke every token of a family not revoked yet; idempotent. Returns how many."""
    oid = to_object_id(family_id)
    if oid is None:
        return 0
    result = await db[COLLECTION].update_many(
        {"familyId": oid, "revokedAt": None}, {"$set": {"revokedAt": now()}}
    )
    return result.modified_count


async def revoke_user_refresh_tokens(*, db: AsyncDatabase[Document], user_id: str) -> int:
    """Revoke every refresh token of a user not revoked yet; idempotent. Returns how many."""
    result = await db[COLLECTION].update_many(
        {**_user_filter(user_id), "revokedAt": None}, {"$set": {"revokedAt": now()}}
    )
    return result.modified_count


async def delete_user_refresh_tokens(*, db: AsyncDatabase[Document], user_id: str) -> int:
    """Remove every refresh token of a user (account deletion); idempotent."""
    result = await db[COLLECTION].delete_many(_user_filter(user_id))
    return result.deleted_count
