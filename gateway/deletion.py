"""Deleting an account across the five databases: a resumable saga.

No transaction spans five databases, so a deletion is a durable job:

1. begin: record the job (users database), then mark the user as deleting,
   which also bumps its token version so every token it holds stops working;
2. forget the user source by source, each step idempotent and noted in the job:
   strategies, credentials, trades, analytics;
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from datasources import Sources, deletion_jobs, idempotency
from datasources import analytics as analytics_source
from datasources import credentials as credentials_source
from datasources import strategies as strategies_source
from datasources import trades as trades_source
from datasources import users as users_source
from datasources._guard import guard
from datasources._mongo import now
from gateway.errors import GatewayError

log = logging.getLogger("gateway.deletion")

Step = Callable[[Sources, str], Awaitable[None]]


async def _forget_strategies(sources: Sources, user_id: str) -> None:
    async with guard(strategies_source.SOURCE, timeout=sources.timeout):
        await strategies_source.delete_user_strategies(db=sources.strategies, user_id=user_id)
        await idempotency.delete_user_keys(db=sources.strategies, user_id=user_id)


async def _forget_credentials(sources: Sources, user_id: str) -> None:
    async with guard(credentials_source.SOURCE, timeout=sources.timeout):
        await credentials_source.delete_user_credentials(db=sources.credentials, user_id=user_id)
        await idempotency.delete_user_keys(db=sources.credentials, user_id=user_id)


async def _forget_trades(sources: Sources, user_id: str) -> None:
    async with guard(trades_source.SOURCE, timeout=sources.timeout), sources.trades.begin() as conn:
        await trades_source.delete_user_trades(conn=conn, user_id=user_id)


async def _forget_analytics(sources: Sources, user_id: str) -> None:
    async with (
        guard(analytics_source.SOURCE, timeout=sources.timeout),
        sources.analytics.begin() as conn,
    ):
        await analytics_source.delete_user_analytics(conn=conn, user_id=user_id)


async def _forget_user(sources: Sources, user_id: str) -> None:
    async with guard(users_source.SOURCE, timeout=sources.timeout):
        await users_source.delete_user(db=sources.users, user_id=user_id)


# In order; the user goes last so that, until the end, a retry can still tell
# whose data it is deleting.
STEPS: Sequence[tuple[str, Step]] = (
    ("strategies", _forget_strategies),
    ("credentials", _forget_credentials),
    ("trades", _forget_trades),
    ("analytics", _forget_analytics),
    ("users", _forget_user),
)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one pass over the unfinished deletions did."""

    finished: tuple[str, ...]
    failed: tuple[str, ...]


async def begin_deletion(sources: Sources, user_id: str) -> bool:
    """Record the job, then mark the user as deleting (revoking its tokens).

    From here on the deletion will complete, now or on recovery. False when the
    user document is not (or no longer) there.
    """
    async with guard(users_source.SOURCE, timeout=sources.timeout):
        await deletion_jobs.record_job(db=sources.users, user_id=user_id)
        return await users_source.mark_user_deleting(db=sources.users, user_id=user_id)


async def run_steps(
    sources: Sources, user_id: str, steps: Sequence[tuple[str, Step]] = STEPS
) -> None:
    """Run deletion steps for a user, noting each in its job; every step is idempotent."""
    for name, step in steps:
        await step(sources, user_id)
        async with guard(users_source.SOURCE, timeout=sources.timeout):
            await deletion_jobs.mark_step_done(db=sources.users, user_id=user_id, step=name)


async def complete_deletion(sources: Sources, user_id: str, *, settle_seconds: float) -> bool:
    """Run every step (again, if a pass already ran) and settle the job when it is due.

    True when the job is gone: nothing of the user remains anywhere, and no
    request authenticated before the deletion can still be writing.
    """
    async with guard(users_source.SOURCE, timeout=sources.timeout):
        job = await deletion_jobs.find_job(db=sources.users, user_id=user_id)
    await run_steps(sources, user_id)
    async with guard(users_source.SOURCE, timeout=sources.timeout):
        if job is None or job.completed_at is None:
            await deletion_jobs.mark_completed(db=sources.users, user_id=user_id)
            job = await deletion_jobs.find_job(db=sources.users, user_id=user_id)
        settled_at = job.completed_at if job else None
        if settled_at is not None and (now() - settled_at).total_seconds() < settle_seconds:
            return False
        await deletion_jobs.delete_job(db=sources.users, user_id=user_id)
    log.info("account %s deleted from every source", user_id)
    return True


async def delete_account(sources: Sources, user_id: str, *, settle_seconds: float) -> bool:
    """Delete a user everywhere. Once begun, a failing source only postpones the end.

    Returns False when there was no such user. When a source fails midway the
    job stays recorded for the sweep and the error is logged, not raised: the
    account is already revoked and will be gone once the source answers.
    """
    if not await begin_deletion(sources, user_id):
        async with guard(users_source.SOURCE, timeout=sources.timeout):
            await deletion_jobs.delete_job(db=sources.users, user_id=user_id)
        return False
    try:
        await complete_deletion(sources, user_id, settle_seconds=settle_seconds)
    except GatewayError as exc:
        log.warning("deletion of %s postponed: %s", user_id, exc.message)
    return True


async def finish_deletions(sources: Sources, *, settle_seconds: float) -> SweepResult:
    """Advance every unfinished deletion: recorded jobs, and users marked but never recorded.

    `finished` lists the jobs that are now gone; a job still settling is in neither list.
    """
    async with guard(users_source.SOURCE, timeout=sources.timeout):
        jobs = await deletion_jobs.find_jobs(db=sources.users)
        marked = await users_source.find_deleting_user_ids(db=sources.users)
    pending = list(dict.fromkeys([job.user_id for job in jobs] + marked))
    finished: list[str] = []
    failed: list[str] = []
    for user_id in pending:
        try:
            await begin_deletion(sources, user_id)
            if await complete_deletion(sources, user_id, settle_seconds=settle_seconds):
                finished.append(user_id)
        except GatewayError as exc:
            log.warning("deletion of %s still pending: %s", user_id, exc.message)
            failed.append(user_id)
    return SweepResult(finished=tuple(finished), failed=tuple(failed))


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
