"""Deleting an account across the five databases: a resumable saga.

No transaction spans five databases, so a deletion is a durable job:

1. begin: record the job (users database), then mark the user as deleting,
   which also bumps its token version so every token it holds stops working;
2. forget the user source by source (`Source.forget_user` of every registered
   source), each step idempotent and noted in the job: strategies, credentials,
   trades, analytics;
3. remove the user itself (and its refresh tokens), and note the job completed;
4. settle: once `settle_seconds` have passed, run every step once more and only
   then forget the job. A request authenticated just before the deletion began
   may still be writing (a strategy, credentials) when the first pass ends;
   the second pass removes what it wrote.

If the process dies anywhere, `finish_deletions` (run by `gateway serve` at
start and periodically, and by `gateway accounts finish-deletions`) picks the
job up and runs the steps again; steps already done cost a no-op each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from datasources import Document, Source, Sources, deletion_jobs, now
from datasources import users as users_source
from gateway.core.errors import GatewayError

log = logging.getLogger("gateway.deletion")


def steps(sources: Sources) -> list[Source]:
    """The deletion steps: every registered source forgets the user, in registry order, and
    the source holding the account goes last so that, until the end, a retry can still tell
    whose data it is deleting."""
    return sorted(sources, key=lambda source: source.holds_accounts)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one pass over the unfinished deletions did."""

    finished: tuple[str, ...]
    failed: tuple[str, ...]
    # Every step done, waiting out DELETION_SETTLE_SECONDS before the settling pass.
    settling: tuple[str, ...] = ()


async def begin_deletion(sources: Sources, user_id: str) -> bool:
    """Record the job, then mark the user as deleting (revoking its tokens).

    From here on the deletion will complete, now or on recovery. False when the
    user document is not (or no longer) there.
    """

    async def begin(db: AsyncDatabase[Document]) -> bool:
        await deletion_jobs.record_job(db=db, user_id=user_id)
        return await users_source.mark_user_deleting(db=db, user_id=user_id)

    return await sources.users.run(begin, kind="write")


async def run_steps(sources: Sources, user_id: str, only: Sequence[Source] | None = None) -> None:
    """Run the deletion steps (`only` these, or all) for a user, noting each in its job;
    every step is idempotent."""
    for source in steps(sources) if only is None else only:
        await source.forget_user(user_id)
        await _note_step(sources, user_id, source.name)


async def _note_step(sources: Sources, user_id: str, step: str) -> None:
    await sources.users.run(
        lambda db: deletion_jobs.mark_step_done(db=db, user_id=user_id, step=step), kind="write"
    )


async def complete_deletion(sources: Sources, user_id: str, *, settle_seconds: float) -> bool:
    """Run every step (again, if a pass already ran) and settle the job when it is due.

    True when the job is gone: nothing of the user remains anywhere, and no
    request authenticated before the deletion can still be writing.
    """
    job = await sources.users.run(
        lambda db: deletion_jobs.find_job(db=db, user_id=user_id), kind="lookup"
    )
    await run_steps(sources, user_id)

    async def settle(db: AsyncDatabase[Document]) -> bool:
        current = job
        if current is None or current.completed_at is None:
            await deletion_jobs.mark_completed(db=db, user_id=user_id)
            current = await deletion_jobs.find_job(db=db, user_id=user_id)
        settled_at = current.completed_at if current else None
        if settled_at is not None and (now() - settled_at).total_seconds() < settle_seconds:
            return False
        await deletion_jobs.delete_job(db=db, user_id=user_id)
        return True

    if not await sources.users.run(settle, kind="write"):
        return False
    log.info("account %s deleted from every source", user_id)
    return True


async def delete_account(sources: Sources, user_id: str, *, settle_seconds: float) -> bool:
    """Delete a user everywhere. Once begun, a failing source only postpones the end.

    Returns False when there was no such user. When a source fails midway the
    job stays recorded for the sweep and the error is logged, not raised: the
    account is already revoked and will be gone once the source answers.
    """
    if not await begin_deletion(sources, user_id):
        await sources.users.run(
            lambda db: deletion_jobs.delete_job(db=db, user_id=user_id), kind="write"
        )
        return False
    try:
        await complete_deletion(sources, user_id, settle_seconds=settle_seconds)
    except GatewayError as exc:
        log.warning("deletion of %s postponed: %s", user_id, exc.message)
    return True


async def finish_deletions(sources: Sources, *, settle_seconds: float) -> SweepResult:
    """Advance every unfinished deletion: recorded jobs, and users marked but never recorded.

    `finished` lists the jobs that are now gone, `settling` those whose every step is done
    and which wait out the settle window, `failed` those a source kept from advancing.
    """
    jobs = await sources.users.run(lambda db: deletion_jobs.find_jobs(db=db), kind="lookup")
    marked = await sources.users.run(
        lambda db: users_source.find_deleting_user_ids(db=db), kind="lookup"
    )
    pending = list(dict.fromkeys([job.user_id for job in jobs] + marked))
    finished: list[str] = []
    failed: list[str] = []
    settling: list[str] = []
    for user_id in pending:
        try:
            await begin_deletion(sources, user_id)
            done = await complete_deletion(sources, user_id, settle_seconds=settle_seconds)
            (finished if done else settling).append(user_id)
        except GatewayError as exc:
            log.warning("deletion of %s still pending: %s", user_id, exc.message)
            failed.append(user_id)
    return SweepResult(finished=tuple(finished), failed=tuple(failed), settling=tuple(settling))


async def sweep_forever(sources: Sources, *, interval: float, settle_seconds: float) -> None:
    """Advance unfinished deletions now and then every `interval` seconds, until cancelled."""
    while True:
        try:
            result = await finish_deletions(sources, settle_seconds=settle_seconds)
            if result.finished or result.failed:
                log.info(
                    "deletion sweep: %d finished, %d pending",
                    len(result.finished),
                    len(result.failed),
                )
        except Exception:
            # Never let the sweeper die: it is the only thing finishing interrupted jobs.
            log.exception("deletion sweep failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
