"""Durable records of account deletions in progress (`account_deletions`, users database).

A job exists from the moment a deletion is requested until every source has
forgotten the user and a settling pass has run; `steps` lists the sources
already done, `completedAt` when the first full pass ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from datasources._mongo import Document, now, utc

COLLECTION = "account_deletions"


@dataclass(frozen=True, slots=True)
class DeletionJob:
    """An account deletion that has not finished yet."""

    user_id: str
    requested_at: datetime
    steps_done: tuple[str, ...]
    completed_at: datetime | None = None


def _job(doc: Document) -> DeletionJob:
    return DeletionJob(
        user_id=str(doc["_id"]),
        requested_at=utc(doc.get("requestedAt")) or now(),
        steps_done=tuple(doc.get("steps", [])),
        completed_at=utc(doc.get("completedAt")),
    )


async def record_job(*, db: AsyncDatabase[Document], user_id: str) -> DeletionJob:
    """Record (or find) the deletion job of a user; idempotent."""
    await db[COLLECTION].update_one(
        {"_id": user_id},
        {"$setOnInsert": {"requestedAt": now(), "steps": []}},
        upsert=True,
    )
    doc = await db[COLLECTION].find_one({"_id": user_id})
    if doc is None:  # finished by a concurrent sweeper between the two calls
        return DeletionJob(user_id=user_id, requested_at=now(), steps_done=())
    return _job(doc)


async def mark_step_done(*, db: AsyncDatabase[Document], user_id: str, step: str) -> None:
    """Note that one source has forgotten the user."""
    await db[COLLECTION].update_one({"_id": user_id}, {"$addToSet": {"steps": step}})


async def mark_completed(*, db: AsyncDatabase[Document], user_id: str) -> None:
    """Note that every source has forgotten the user once (the first completed pass)."""
    await db[COLLECTION].update_one(
        {"_id": user_id, "completedAt": None}, {"$set": {"completedAt": now()}}
    )


async def find_job(*, db: AsyncDatabase[Document], user_id: str) -> DeletionJob | None:
    """The unfinished job of a user, if any."""
    doc = await db[COLLECTION].find_one({"_id": user_id})
    return _job(doc) if doc else None


async def find_jobs(*, db: AsyncDatabase[Document]) -> list[DeletionJob]:
    """Every unfinished job, oldest first."""
    cursor = db[COLLECTION].find({}).sort("requestedAt", 1)
    return [_job(doc) async for doc in cursor]


async def delete_job(*, db: AsyncDatabase[Document], user_id: str) -> None:
    """Forget a finished job."""
    await db[COLLECTION].delete_one({"_id": user_id})
