"""Activity events written with the change they record: an outbox inside the changed document.

No transaction spans a Mongo database and the analytics database, and a Mongo server
without a replica set has no multi-document transaction either. So the event of a change
is written in the same single-document write as the change itself, into an `outbox`
array on the document changed: when the change lands, its event has landed with it; when
it does not, neither has. Delivery copies pending events into `activity_events`
(analytics) under the event's id, so delivering twice records once, then pulls them from
the document. The request delivers its own events at once (resolvers/activity.py
`deliver`); the relay delivers whatever a request could not (the analytics database
down, an answer lost, a crash), so every change that landed is recorded exactly once,
eventually.

A deletion that records an event leaves a tombstone: the same write that pushes the
event removes the document's content and marks it `tombstone`; the tombstone itself goes
once its events are delivered (`acknowledge`). Reads skip tombstones (`LIVE`).

    await db.strategies.insert_one({..., **outbox.carrying([event])})
    await db.strategies.update_one(query, {"$set": {...}, **outbox.pushing([event])})
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from datasources._mongo import Document, now, utc

FIELD = "outbox"
# Every kind of activity event the gateway records; the schema's ActivityKind shows them.
ACTIVITY_KINDS = (
    "ACCOUNT_CREATED",
    "SIGNED_IN",
    "PROFILE_UPDATED",
    "PASSWORD_CHANGED",
    "CREDENTIALS_SAVED",
    "CREDENTIALS_DELETED",
    "STRATEGY_CREATED",
    "STRATEGY_UPDATED",
    "STRATEGY_DELETED",
    "STRATEGY_STARTED",
    "STRATEGY_PAUSED",
    "STRATEGY_RESUMED",
    "STRATEGY_STOPPED",
)
TOMBSTONE = "tombstone"
# An event's subject when it is the document carrying it, whose id a write that may
# insert it does not know beforehand (an upsert): filled in on delivery (`about`).
THIS_DOCUMENT = "$document"
# The filter part that skips tombstones: every read of a collection with tombstones has it.
LIVE: Mapping[str, Any] = {TOMBSTONE: {"$exists": False}}
# Documents with events pending (a sparse index: only those documents are in it).
INDEXES = [IndexModel([(f"{FIELD}.id", ASCENDING)], name="outbox_pending", sparse=True)]
_PENDING = {f"{FIELD}.id": {"$exists": True}}


@dataclass(frozen=True, slots=True)
class Event:
    """One activity event: what happened to a user's account, and when."""

    id: str
    user_id: str
    kind: str
    subject_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=now)

    def stored(self) -> Document:
        """The event as kept in an outbox."""
        return {
            "id": self.id,
            "userId": self.user_id,
            "kind": self.kind,
            "subjectId": self.subject_id,
            "data": dict(self.data),
            "at": self.at,
        }

    def about(self, document_id: Any) -> Event:
        """The event as delivered from the document `document_id`."""
        if self.subject_id != THIS_DOCUMENT:
            return self
        return Event(self.id, self.user_id, self.kind, str(document_id), self.data, self.at)

    @classmethod
    def from_stored(cls, doc: Mapping[str, Any]) -> Event:
        """The event an outbox entry holds."""
        return cls(
            id=str(doc["id"]),
            user_id=str(doc["userId"]),
            kind=str(doc["kind"]),
            subject_id=doc.get("subjectId"),
            data=dict(doc.get("data") or {}),
            at=utc(doc.get("at")) or now(),
        )


def event(
    user_id: str,
    kind: str,
    *,
    subject_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    once_per: str | None = None,
) -> Event:
    """A new event. With `once_per`, its id is derived from `kind` and that key, so the same
    change written again (a retry under an idempotency key) is still recorded once."""
    if kind not in ACTIVITY_KINDS:  # a new kind is added there, so the schema shows it
        raise ValueError(f"unknown activity kind {kind!r}")
    if once_per is None:
        event_id = uuid.uuid4().hex
    else:
        event_id = hashlib.sha256(f"{kind}\0{once_per}".encode()).hexdigest()[:32]
    return Event(event_id, user_id, kind, subject_id, dict(data or {}))


def carrying(events: Sequence[Event]) -> Document:
    """The fields of a new document that carries `events`."""
    return {FIELD: [item.stored() for item in events]} if events else {}


def pushing(events: Sequence[Event]) -> Document:
    """The update operator that adds `events` to a document in the same write."""
    return {"$push": {FIELD: {"$each": [item.stored() for item in events]}}} if events else {}


async def ensure_indexes(*, db: AsyncDatabase[Document], collections: Sequence[str]) -> None:
    """Index the documents with pending events in each collection; idempotent."""
    for collection in collections:
        await db[collection].create_indexes(INDEXES)


@dataclass(frozen=True, slots=True)
class Pending:
    """A document's events waiting for delivery."""

    collection: str
    document_id: Any
    events: tuple[Event, ...]


async def pending(*, db: AsyncDatabase[Document], collection: str, limit: int) -> list[Pending]:
    """Up to `limit` documents of `collection` with events waiting for delivery."""
    cursor = db[collection].find(_PENDING, projection={FIELD: 1}).limit(limit)
    return [
        Pending(collection, doc["_id"], tuple(Event.from_stored(item) for item in doc[FIELD]))
        async for doc in cursor
    ]


async def acknowledge(
    *, db: AsyncDatabase[Document], collection: str, document_id: Any, event_ids: Sequence[str]
) -> None:
    """Drop delivered events from their document; a tombstone left with none goes."""
    await db[collection].update_one(
        {"_id": document_id}, {"$pull": {FIELD: {"id": {"$in": list(event_ids)}}}}
    )
    await db[collection].delete_one(
        {"_id": document_id, TOMBSTONE: True, f"{FIELD}.id": {"$exists": False}}
    )
