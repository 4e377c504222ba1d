"""The credentials source: the `credentials` collection of MongoDB `credentials_db`.

Reads never return a secret: the record this module builds says only which
secret fields are set, and the masked hint of the API key stored beside it.

Writes seal: `upsert_credentials` takes plaintext secrets and a `SecretBox` and
stores only sealed values (see gateway/core/crypto.py for the format), so no caller
(resolver, seed, test factory) can put a plaintext secret in the collection.
Only `rotate_credentials` ever opens a stored secret, to seal it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiodataloader import DataLoader
from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from datasources import idempotency, outbox
from datasources._batch import Scope, in_key_order
from datasources._mongo import Document, MongoSource, now, to_object_ids, utc
from datasources.migrations import credentials as credentials_versions
from datasources.outbox import Event
from gateway.core.crypto import SecretBox, UnsealError

COLLECTION = "credentials"
SECRET_FIELDS = (
    "accessToken",
    "brokerUsername",
    "brokerPassword",
    "totpSecret",
    "apiKey",
    "apiSecret",
)
CLIENT_ID = "clientId"
API_KEY_HINT = "apiKeyHint"
INDEXES = [IndexModel([("userId", ASCENDING)], unique=True)]
_UPSERT_ATTEMPTS = 3
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

    id: str
    user_id: str
    broker: str | None
    client_id: str | None
    configured_fields: tuple[str, ...]
    api_key_hint: str | None
    updated_at: datetime | None


def _record(doc: Document, configured: Sequence[str]) -> CredentialsRecord:
    return CredentialsRecord(
        id=str(doc["_id"]),
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
        {"$match": {"userId": {"$in": oids}, **outbox.LIVE}},
        {"$project": {**_PROJECTION, **flags}},
    ]
    records = []
    async for doc in await db[COLLECTION].aggregate(pipeline):
        configured = [name for name in SECRET_FIELDS if doc.get(f"has_{name}")]
        records.append(_record(doc, configured))
    return records


def _storage_update(
    *, box: SecretBox, user_id: str, broker: str, changes: Mapping[str, str | None]
) -> dict[str, Any]:
    unknown = set(changes) - {CLIENT_ID, *SECRET_FIELDS}
    if unknown:
        raise ValueError(f"unknown credential fields: {sorted(unknown)}")
    to_set: dict[str, Any] = {}
    to_unset: dict[str, str] = {}
    for name, value in changes.items():
        if value is None:
            to_unset[name] = ""
        elif name == CLIENT_ID:
            to_set[name] = value
        else:
            to_set[name] = box.seal(value, user_id=user_id, field=name)
    if "apiKey" in changes:
        hint = mask_hint(changes["apiKey"])
        if hint is None:
            to_unset[API_KEY_HINT] = ""
        else:
            to_set[API_KEY_HINT] = hint
    # Saving over deleted credentials (a tombstone waiting for its event's delivery) revives
    # the document; the tombstone held no secret.
    to_unset[outbox.TOMBSTONE] = ""
    moment = now()
    update: dict[str, Any] = {
        "$set": {"broker": broker, **to_set, "updatedAt": moment},
        "$setOnInsert": {"createdAt": moment},
    }
    if to_unset:
        update["$unset"] = to_unset
    return update


async def upsert_credentials(
    *,
    db: AsyncDatabase[Document],
    box: SecretBox,
    user_id: str,
    broker: str,
    changes: Mapping[str, str | None],
    events: Sequence[Event] = (),
) -> str:
    """Store a user's broker credentials, sealing every secret, with `events`; returns the
    document's id.

    `changes` may name `clientId` and any of `SECRET_FIELDS`: a field given a value
    is set (a secret sealed by `box` for this user and field), a field given None is
    removed, a field left out keeps its stored value. The API key's masked hint
    follows the API key: stored beside it when it is set, removed when it is cleared.
    """
    update = {
        **_storage_update(box=box, user_id=user_id, broker=broker, changes=changes),
        **outbox.pushing(events),
    }
    # Two first saves of one user may race to insert; the loser's retry updates. (The
    # embedded server may also answer such a race with no document at all.) Saving the
    # same values again changes nothing, and a repeated event is recorded once.
    doc: Document | None = None
    for attempt in range(_UPSERT_ATTEMPTS):
        try:
            doc = await db[COLLECTION].find_one_and_update(
                {"userId": ObjectId(user_id)},
                update,
                projection={"_id": 1},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            if attempt == _UPSERT_ATTEMPTS - 1:
                raise
            continue
        if doc is not None:
            break
    if doc is None:
        raise RuntimeError("an upsert returning the document after it returned none")
    return str(doc["_id"])


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What one `rotate_credentials` pass did."""

    kid: str
    documents_checked: int = 0
    documents_rotated: int = 0
    secrets_rotated: int = 0
    # Secrets that could not be opened (unknown key, tampered, copied): left as they are.
    unreadable_secrets: int = 0
    unreadable_user_ids: tuple[str, ...] = ()
    # Documents another writer kept changing under the pass; a rerun picks them up.
    documents_skipped: int = 0


@dataclass(slots=True)
class _Tally:
    documents_checked: int = 0
    documents_rotated: int = 0
    secrets_rotated: int = 0
    unreadable_secrets: int = 0
    unreadable_user_ids: list[str] = field(default_factory=list)
    documents_skipped: int = 0


_ROTATION_PROJECTION: dict[str, Any] = {"userId": 1, **dict.fromkeys(SECRET_FIELDS, 1)}
_ROTATION_ATTEMPTS = 5


async def rotate_credentials(
    *,
    db: AsyncDatabase[Document],
    box: SecretBox,
    on_progress: Callable[[int, int], None] | None = None,
) -> RotationResult:
    """Seal every stored secret not already under `box`'s current key again under it.

    Idempotent and safe to interrupt: each document is updated on its own with a
    compare-and-set on the ciphertexts it replaces, so a concurrent save is never
    overwritten (the document is read again and retried), and a rerun skips what
    is already under the current key. `updatedAt` is left alone: the user's data
    did not change. Secrets that cannot be opened are counted and left untouched.
    `on_progress(done, total)` is called after each document.
    """
    tally = _Tally()
    total = await db[COLLECTION].count_documents({})
    if on_progress is not None:
        on_progress(0, total)
    cursor = db[COLLECTION].find({}, _ROTATION_PROJECTION).sort("_id", ASCENDING)
    async for doc in cursor:
        await _rotate_document(db=db, box=box, doc=doc, tally=tally)
        tally.documents_checked += 1
        if on_progress is not None:
            on_progress(tally.documents_checked, max(total, tally.documents_checked))
    return RotationResult(
        kid=box.current_kid,
        documents_checked=tally.documents_checked,
        documents_rotated=tally.documents_rotated,
        secrets_rotated=tally.secrets_rotated,
        unreadable_secrets=tally.unreadable_secrets,
        unreadable_user_ids=tuple(tally.unreadable_user_ids),
        documents_skipped=tally.documents_skipped,
    )


async def _rotate_document(
    *, db: AsyncDatabase[Document], box: SecretBox, doc: Document, tally: _Tally
) -> None:
    current: Document | None = doc
    for _attempt in range(_ROTATION_ATTEMPTS):
        if current is None:  # deleted meanwhile: nothing left to rotate
            return
        user_id = str(current["userId"])
        stale = {
            name: value
            for name in SECRET_FIELDS
            if (value := current.get(name)) is not None
            and not (isinstance(value, str) and box.is_current(value))
        }
        resealed: dict[str, str] = {}
        unreadable = 0
        for name, value in stale.items():
            try:
                resealed[name] = box.reseal(value, user_id=user_id, field=name)
            except UnsealError:
                unreadable += 1
        if resealed:
            # Compare-and-set: only if every replaced ciphertext is still the one we opened.
            result = await db[COLLECTION].update_one(
                {"_id": current["_id"], **{name: stale[name] for name in resealed}},
                {"$set": resealed},
            )
            if result.matched_count == 0:
                current = await db[COLLECTION].find_one({"_id": doc["_id"]}, _ROTATION_PROJECTION)
                continue
            tally.documents_rotated += 1
            tally.secrets_rotated += len(resealed)
        if unreadable:
            tally.unreadable_secrets += unreadable
            tally.unreadable_user_ids.append(user_id)
        return
    tally.documents_skipped += 1


class CredentialsSource(MongoSource):
    """The credentials source: `credentials` and its idempotency keys in `credentials_db`."""

    name = "credentials"
    migrations = credentials_versions.MIGRATIONS
    outbox_collections = (COLLECTION,)

    async def forget_user(self, user_id: str) -> None:
        """Remove the user's credentials and idempotency keys."""
        await delete_user_credentials(db=self.db, user_id=user_id)
        await idempotency.delete_user_keys(db=self.db, user_id=user_id)

    async def status_of(self, user_id: str) -> CredentialsRecord | None:
        """One user's credentials status read afresh (never a secret); None without any."""
        found = await find_credentials(db=self.db, user_ids=[user_id])
        return found[0] if found else None

    def loaders(self, scope: Scope) -> CredentialsLoaders:
        """The credentials source's loaders for one request."""
        return CredentialsLoaders(self, scope)


class CredentialsLoaders:
    """The credentials source's per-request loaders."""

    def __init__(self, source: MongoSource, scope: Scope) -> None:
        self._source = source
        self._scope = scope
        self.by_user: DataLoader[str, CredentialsRecord | None] = source.loader(self._load_by_user)

    async def _load_by_user(self, keys: list[str]) -> list[CredentialsRecord | None]:
        visible = self._scope.visible(keys)
        rows: list[CredentialsRecord] = []
        if visible:
            rows = await self._source.run(
                lambda db: find_credentials(db=db, user_ids=visible), kind="lookup"
            )
        return in_key_order(keys, rows, lambda record: record.user_id)


async def remove_credentials(
    *, db: AsyncDatabase[Document], user_id: str, events: Sequence[Event]
) -> str | None:
    """Remove a user's credentials (every secret at once), with `events`: the document is
    left a tombstone until they are delivered. Returns its id; None when there were none."""
    oids = to_object_ids([user_id])
    if not oids:
        return None
    content = dict.fromkeys((*SECRET_FIELDS, CLIENT_ID, API_KEY_HINT, "broker"), "")
    doc = await db[COLLECTION].find_one_and_update(
        {"userId": oids[0], **outbox.LIVE},
        {
            "$set": {outbox.TOMBSTONE: True, "updatedAt": now()},
            "$unset": content,
            **outbox.pushing(events),
        },
        projection={"_id": 1},
    )
    return str(doc["_id"]) if doc is not None else None


# Account deletion (see resolvers/deletion.py).


async def delete_user_credentials(*, db: AsyncDatabase[Document], user_id: str) -> int:
    """Remove a user's credentials; idempotent. Returns how many documents were removed."""
    oids = to_object_ids([user_id])
    if not oids:
        return 0
    result = await db[COLLECTION].delete_many({"userId": {"$in": oids}})
    return result.deleted_count
