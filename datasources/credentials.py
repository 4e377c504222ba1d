"""The credentials source: the `credentials` collection of MongoDB `credentials_db`.

Reads never return a secret: the record this module builds says only which
secret fields are set, and the masked hint of the API key stored beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiodataloader import DataLoader
from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from datasources._batch import Scope, in_key_order
from datasources._guard import guard
from datasources._mongo import Document, now, to_object_ids, utc

SOURCE = "credentials"
COLLECTION = "credentials"
SECRET_FIELDS = (
    "accessToken",
    "brokerUsername",
    "brokerPassword",
    "totpSecret",
    "apiKey",
    "apiSecret",
)
INDEXES = [IndexModel([("userId", ASCENDING)], unique=True)]
# Only these fields are read; secrets are asked for as presence flags, never fetched.
_PROJECTION: dict[str, Any] = {
    "userId": 1,
    "broker": 1,
    "clientId": 1,
    "apiKeyHint": 1,
    "updatedAt": 1,
    "createdAt": 1,
}


@dataclass(frozen=True, slots=True)
class CredentialsRecord:
    """A user's broker credentials status: which secrets are configured, none of their values."""

    user_id: str
    broker: str | None
    client_id: str | None
    configured_fields: tuple[str, ...]
    api_key_hint: str | None
    updated_at: datetime | None


def _record(doc: Document, configured: Sequence[str]) -> CredentialsRecord:
    return CredentialsRecord(
        user_id=str(doc["userId"]),
        broker=doc.get("broker"),
        client_id=doc.get("clientId"),
        configured_fields=tuple(name for name in SECRET_FIELDS if name in configured),
        api_key_hint=doc.get("apiKeyHint"),
        updated_at=utc(doc.get("updatedAt")) or utc(doc.get("createdAt")),
    )


def mask_hint(api_key: str | None) -> str | None:
    """The masked form of an API key shown to its owner: its last four characters."""
    if not api_key:
        return None
    return f"••••{api_key[-4:]}" if len(api_key) > 4 else "••••"


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Create the collection's indexes; a no-op when they exist."""
    await db[COLLECTION].create_indexes(INDEXES)


async def find_credentials(
    *, db: AsyncDatabase[Document], user_ids: Sequence[str]
) -> list[CredentialsRecord]:
    """The credentials status of each of `user_ids` that has credentials stored.

    The secrets' presence is computed by the server (`$ifNull` per field), so the
    encrypted values never cross the wire to the gateway on a read.
    """
    oids = to_object_ids(user_ids)
    if not oids:
        return []
    flags = {
        f"has_{name}": {"$cond": [{"$ifNull": [f"${name}", False]}, True, False]}
        for name in SECRET_FIELDS
    }
    pipeline: list[dict[str, Any]] = [
        {"$match": {"userId": {"$in": oids}}},
        {"$project": {**_PROJECTION, **flags}},
    ]
    records = []
    async for doc in await db[COLLECTION].aggregate(pipeline):
        configured = [name for name in SECRET_FIELDS if doc.get(f"has_{name}")]
        records.append(_record(doc, configured))
    return records


async def upsert_credentials(
    *,
    db: AsyncDatabase[Document],
    user_id: str,
    broker: str,
    client_id: str | None,
    secrets: Mapping[str, str | None],
) -> None:
    """Store a user's credentials document, replacing the listed secret fields.

    Callers pass secrets already sealed for storage; the API key's masked hint
    must be given as `apiKeyHint` in `secrets` when the API key changes.
    """
    unknown = set(secrets) - {*SECRET_FIELDS, "apiKeyHint"}
    if unknown:
        raise ValueError(f"unknown credential fields: {sorted(unknown)}")
    moment = now()
    await db[COLLECTION].update_one(
        {"userId": ObjectId(user_id)},
        {
            "$set": {"broker": broker, "clientId": client_id, **secrets, "updatedAt": moment},
            "$setOnInsert": {"createdAt": moment},
        },
        upsert=True,
    )


class CredentialsLoaders:
    """The credentials source's per-request loaders."""

    def __init__(self, db: AsyncDatabase[Document], scope: Scope, timeout: float) -> None:
        self._db = db
        self._scope = scope
        self._timeout = timeout
        self.by_user: DataLoader[str, CredentialsRecord | None] = DataLoader(self._load_by_user)

    async def _load_by_user(self, keys: list[str]) -> list[CredentialsRecord | None]:
        visible = self._scope.visible(keys)
        rows: list[CredentialsRecord] = []
        if visible:
            async with guard(SOURCE, timeout=self._timeout):
                rows = await find_credentials(db=self._db, user_ids=visible)
        return in_key_order(keys, rows, lambda record: record.user_id)


# Account deletion (see gateway/deletion.py).


async def delete_user_credentials(*, db: AsyncDatabase[Document], user_id: str) -> int:
    """Remove a user's credentials; idempotent. Returns how many documents were removed."""
    oids = to_object_ids([user_id])
    if not oids:
        return 0
    result = await db[COLLECTION].delete_many({"userId": {"$in": oids}})
    return result.deleted_count
