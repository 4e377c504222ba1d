"""Recording what happened to an account: activity events, written with the change they
record and delivered to the analytics database (datasources/outbox.py).

A resolver builds its events (`outbox.event`), hands them to the write that makes the
change, and once that write has landed calls `deliver`: the events are recorded now,
if the analytics database answers, and dropped from the changed document. Whatever is
left (analytics down, the answer of the write lost, the process gone) the relay
(`relay_pending`, run by `gateway serve` every OUTBOX_RELAY_INTERVAL_SECONDS) delivers
later. Events are recorded under their ids, so each is recorded exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources import Document, MongoSource, Sources, deadline, outbox
from datasources import analytics as analytics_source
from datasources import users as users_source
from datasources.outbox import Event
from gateway.core.errors import GatewayError

log = logging.getLogger("gateway.activity")

# Documents with pending events handled per collection in one relay pass.
RELAY_BATCH = 200


async def deliver(
    sources: Sources,
    source: MongoSource,
    collection: str,
    document_id: str,
    events: Sequence[Event],
) -> None:
    """Record `events`, just written with their change on the document `document_id` of
    `collection` in `source`, and drop them from it; best effort.

    Activity is a record of what happened, not a condition of it: the change stands
    whatever happens here, and what cannot be delivered now stays in the document for
    the relay.
    """
    if not events:
        return
    try:
        # Within what is left of the request's deadline: a slow analytics database leaves
        # the events to the relay rather than holding the answer of a change that stands.
        with deadline(sources.analytics.timeout):
            recorded = [item.about(document_id) for item in events]
            await sources.analytics.write(
                lambda conn: analytics_source.record_events(conn=conn, events=recorded)
            )
            await source.run(
                lambda db: outbox.acknowledge(
                    db=db,
                    collection=collection,
                    document_id=ObjectId(document_id),
                    event_ids=[item.id for item in events],
                ),
                kind="write",
            )
    except GatewayError:
        log.info("%s left for the relay", ", ".join(item.kind for item in events))


@dataclass(frozen=True, slots=True)
class RelayResult:
    """What one relay pass did."""

    delivered: int = 0
    # Events of accounts being deleted: dropped, never recorded.
    dropped: int = 0


async def relay_pending(sources: Sources, *, batch: int = RELAY_BATCH) -> RelayResult:
    """Deliver the events pending in every source's outbox collections (up to `batch`
    documents each)."""
    delivered = dropped = 0
    for source in sources.all:
        if not isinstance(source, MongoSource):
            continue
        for collection in source.outbox_collections:
            try:
                found = await _relay(sources, source, collection, batch=batch)
            except GatewayError as exc:  # one source down holds back no other's events
                log.warning("outbox relay of %s.%s postponed: %s", source.name, collection, exc)
                continue
            delivered += found.delivered
            dropped += found.dropped
    return RelayResult(delivered=delivered, dropped=dropped)


async def _relay(
    sources: Sources, source: MongoSource, collection: str, *, batch: int
) -> RelayResult:
    """One relay pass over one collection."""

    async def find(db: AsyncDatabase[Document]) -> list[outbox.Pending]:
        return await outbox.pending(db=db, collection=collection, limit=batch)

    found = await source.run(find, kind="lookup")
    if not found:
        return RelayResult()
    # Read just before recording: the events of an account being deleted are dropped.
    deleting = set(
        await sources.users.run(
            lambda db: users_source.find_deleting_user_ids(db=db), kind="lookup"
        )
    )
    events = [item.about(entry.document_id) for entry in found for item in entry.events]
    recorded = [item for item in events if item.user_id not in deleting]
    if recorded:
        await sources.analytics.write(
            lambda conn: analytics_source.record_events(conn=conn, events=recorded)
        )
    for entry in found:

        async def done(db: AsyncDatabase[Document], entry: outbox.Pending = entry) -> None:
            ids = [item.id for item in entry.events]
            await outbox.acknowledge(
                db=db, collection=collection, document_id=entry.document_id, event_ids=ids
            )

        await source.run(done, kind="write")
    return RelayResult(delivered=len(recorded), dropped=len(events) - len(recorded))


async def relay_forever(sources: Sources, *, interval: float) -> None:
    """Deliver pending events now and then every `interval` seconds, until cancelled."""
    while True:
        try:
            result = await relay_pending(sources)
            if result.delivered or result.dropped:
                log.info(
                    "outbox relay: %d events delivered, %d dropped",
                    result.delivered,
                    result.dropped,
                )
        except GatewayError as exc:
            log.warning("outbox relay postponed: %s", exc.message)
        except Exception:
            log.exception("outbox relay failed")
        await asyncio.sleep(interval)
