"""Idempotency keys: a repeated mutation with the same key returns the first result.

Keys live beside the data they protect (a collection `idempotency_keys` in that
source's Mongo database), scoped by user and operation, and expire by TTL.

    claim = await claim_key(db=..., user_id=..., operation="createStrategy", key=..., ...)
    if claim.result_id is not None:      # done before: answer with the first result
        ...
    try:
        ...act, producing result_id...
    except BaseException:
        await release_key(...)           # nothing happened: let a retry act
        raise
    await complete_key(..., result_id=result_id)

A claim records when it was taken (`claimedAt`), by whom (`owner`: this process and
request, from `owning()`) and until when its owner may still act (`leaseUntil`: the end
of the owner request's deadline, after which none of its source calls can still run). A
retry takes an unfinished claim over, by a compare-and-set on that `claimedAt` (so only
one retry does), as soon as its owner is known to be done: at once when the owner was a
request of this process that has left its `owning()` block, else when the lease has run
out. A request that failed without knowing whether its write landed (the source
unavailable, the request cut) leaves its claim for such a takeover rather than releasing
it, so the key keeps its `createdAt`, and what the retry records is recognised as the
same change (`Claim.created_at`). Completing and
releasing are conditional on the same `claimedAt`: a request whose claim was taken over
changes nothing of the key. The operation must therefore be safe to run again under a
taken-over claim (re-applying the same input, or reusing an id bound to the key
beforehand).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from datasources._mongo import Document, MongoSource, now
from datasources._source import detached, time_left
from gateway.core.errors import BadUserInput, Conflict, GatewayError, SourceUnavailable

log = logging.getLogger("gateway.idempotency")

COLLECTION = "idempotency_keys"
INDEXES = [IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0)]
MAX_KEY_LENGTH = 128
# The lease of a claim taken outside any deadline (a command, a script).
DEFAULT_LEASE_SECONDS = 60.0
# Claims of this process's requests that have not ended yet ("process:serial").
_PROCESS = uuid.uuid4().hex[:16]
_SERIALS = itertools.count()
_LIVE: set[str] = set()


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed key: `result_id` is set when the operation already completed under it.

    `claimed_at` identifies this claim among takeovers of the same key; `created_at` is
    when the key was first claimed, the same across takeovers (a key claimed anew after it
    was released or expired has a new one); `owner` is the request holding it.
    """

    id: str
    result_id: str | None
    claimed_at: datetime | None = None
    owner: str | None = None
    created_at: datetime | None = None

    @property
    def change(self) -> str:
        """What names the one change made under this claim, whichever request makes it."""
        created = self.created_at.isoformat() if self.created_at else ""
        return f"{self.id}@{created}"


def lease_seconds() -> float:
    """How long a claim taken now may still be acted on by its owner: what is left of the
    request's deadline (no source call of the request outlives it)."""
    left = time_left()
    return DEFAULT_LEASE_SECONDS if left is None else left + 0.5


@contextmanager
def owning() -> Iterator[str]:
    """The owner of one request's claims: live (no retry takes its claim over) until the
    block ends, however it ends, from before its claim is even written."""
    owner = f"{_PROCESS}:{next(_SERIALS)}"
    _LIVE.add(owner)
    try:
        yield owner
    finally:
        _LIVE.discard(owner)


def ambiguous(error: BaseException) -> bool:
    """Whether a write that failed with `error` may have landed all the same: then its
    claim is left for a retry to take over, never released."""
    return not isinstance(error, GatewayError) or isinstance(error, SourceUnavailable)


def _abandoned(existing: Document, moment: datetime) -> bool:
    """Whether an unfinished claim's owner is known to be done with it."""
    owner = existing.get("owner")
    if isinstance(owner, str) and owner.startswith(f"{_PROCESS}:") and owner not in _LIVE:
        return True
    until = existing.get("leaseUntil")
    if until is None:  # claims written before leases: presumed alive for the default lease
        claimed_at = existing.get("claimedAt", existing.get("createdAt"))
        if claimed_at is None:
            return False
        until = claimed_at + timedelta(seconds=DEFAULT_LEASE_SECONDS)
    if until.tzinfo is None:
        until = until.replace(tzinfo=moment.tzinfo)
    return bool(moment > until)


def fingerprint(payload: Any) -> str:
    """A stable digest of a request's input, to tell a retry from a reused key."""
    encoded = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def check_key(key: str) -> str:
    """A client mutation id: 1 to MAX_KEY_LENGTH characters (BAD_USER_INPUT otherwise)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadUserInput(
            f"'clientMutationId' must be 1 to {MAX_KEY_LENGTH} characters long.",
            field="clientMutationId",
        )
    return key


def _key_id(user_id: str, operation: str, key: str) -> str:
    return f"{user_id}:{operation}:{key}"


async def ensure_indexes(*, db: AsyncDatabase[Document]) -> None:
    """Create the TTL index that forgets old keys."""
    await db[COLLECTION].create_indexes(INDEXES)


async def claim_key(
    *,
    db: AsyncDatabase[Document],
    user_id: str,
    operation: str,
    key: str,
    request_fingerprint: str,
    ttl_seconds: int,
    owner: str,
    lease: float | None = None,
) -> Claim:
    """Claim `key` for this request, or find the completed first request under it.

    A key reused with a different input, or while its first request is still
    running, is a CONFLICT naming `clientMutationId`. A claim whose owner is done
    with it (`_abandoned`) is taken over. The claim is held for `lease` seconds at
    most (by default, `lease_seconds()`) by `owner` (from `owning()`).
    """
    check_key(key)
    key_id = _key_id(user_id, operation, key)
    # A race lost to an expiring key or to a concurrent takeover is tried again.
    for _ in range(3):
        claim = await _try_claim(
            db=db,
            key_id=key_id,
            user_id=user_id,
            request_fingerprint=request_fingerprint,
            ttl_seconds=ttl_seconds,
            lease=lease_seconds() if lease is None else lease,
            owner=owner,
        )
        if claim is not None:
            return claim
    raise Conflict(
        "A request with this clientMutationId is still in progress.", field="clientMutationId"
    )


async def _try_claim(
    *,
    db: AsyncDatabase[Document],
    key_id: str,
    user_id: str,
    request_fingerprint: str,
    ttl_seconds: int,
    lease: float,
    owner: str,
) -> Claim | None:
    """One attempt at `claim_key`; None when a race was lost and it must be tried again."""
    moment = now()
    held = {"claimedAt": moment, "owner": owner, "leaseUntil": moment + timedelta(seconds=lease)}
    try:
        await db[COLLECTION].insert_one(
            {
                "_id": key_id,
                "userId": user_id,
                "fingerprint": request_fingerprint,
                "resultId": None,
                "createdAt": moment,
                **held,
                "expiresAt": moment + timedelta(seconds=ttl_seconds),
            }
        )
    except DuplicateKeyError:
        existing = await db[COLLECTION].find_one({"_id": key_id})
        if existing is None:  # expired between the insert and the read: claim again
            return None
        if existing["fingerprint"] != request_fingerprint:
            raise Conflict(
                "This clientMutationId was already used with a different input.",
                field="clientMutationId",
            ) from None
        created_at = existing.get("createdAt")
        if existing.get("resultId") is not None:
            return Claim(id=key_id, result_id=str(existing["resultId"]), created_at=created_at)
        if not _abandoned(existing, moment):
            raise Conflict(
                "A request with this clientMutationId is still in progress.",
                field="clientMutationId",
            ) from None
        taken = await db[COLLECTION].update_one(
            {"_id": key_id, "resultId": None, "claimedAt": existing.get("claimedAt")},
            {"$set": {**held, "expiresAt": moment + timedelta(seconds=ttl_seconds)}},
        )
        if taken.modified_count != 1:  # another retry took it over, or it completed
            return None
        log.info("took over abandoned idempotency key %s", key_id)
        return Claim(key_id, None, claimed_at=moment, owner=owner, created_at=created_at)
    return Claim(key_id, None, claimed_at=moment, owner=owner, created_at=moment)


async def complete_key(*, db: AsyncDatabase[Document], claim: Claim, result_id: str) -> str | None:
    """Record the result of the request that claimed the key, if the claim is still its own.

    Returns the result now bound to the key: `result_id`, or the result another
    request recorded after taking the claim over; None when the key is gone or
    taken over and not completed yet.
    """
    owned = await db[COLLECTION].update_one(
        {"_id": claim.id, "resultId": None, "claimedAt": claim.claimed_at},
        {"$set": {"resultId": result_id}},
    )
    if owned.modified_count == 1:
        return result_id
    existing = await db[COLLECTION].find_one({"_id": claim.id})
    if existing is None or existing.get("resultId") is None:
        return None
    return str(existing["resultId"])


async def release_key(*, db: AsyncDatabase[Document], claim: Claim) -> None:
    """Forget a claim whose request failed, so a retry may act (unless taken over since)."""
    await db[COLLECTION].delete_one(
        {"_id": claim.id, "resultId": None, "claimedAt": claim.claimed_at}
    )


async def release_key_quietly(*, source: MongoSource, claim: Claim) -> None:
    """`release_key` in `source`, best effort: called under the request's own failure, which
    is what the client must see; a claim that cannot be released stays "in progress" until
    its TTL."""
    try:
        with detached(source.timeout):  # even when the request's own deadline is what failed
            await source.run(lambda db: release_key(db=db, claim=claim), kind="write")
    except GatewayError:
        log.warning("could not release idempotency key %s", claim.id)


async def forget_result(
    *, db: AsyncDatabase[Document], user_id: str, operation: str, result_id: str
) -> None:
    """Forget the keys whose result was `result_id` (the result was deleted since).

    A later request under such a key then acts anew instead of answering with, or
    re-creating, what is gone.
    """
    await db[COLLECTION].delete_many(
        {"_id": {"$regex": f"^{re.escape(_key_id(user_id, operation, ''))}"}, "resultId": result_id}
    )


async def delete_user_keys(*, db: AsyncDatabase[Document], user_id: str) -> None:
    """Forget every key of a user (account deletion)."""
    await db[COLLECTION].delete_many({"userId": user_id})
