"""Deleting an account across five databases: a saga that survives dying at any step."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from sqlalchemy import func, select

from datasources import Sources, deletion_jobs, idempotency
from datasources import analytics as analytics_source
from datasources.analytics import activity_events, daily_strategy_metrics
from datasources.trades import trades
from datasources.users import UserRecord, mark_user_deleting
from gateway.app import create_app
from gateway.core.settings import Settings
from resolvers.deletion import begin_deletion, delete_account, finish_deletions, run_steps, steps
from tests.helpers import (
    GATEWAY,
    NOW,
    PASSWORD,
    ROOT,
    environment,
    error_codes,
    every_source_timeout,
    gid,
    gql,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    refresh_analytics,
    token_for,
    trade_row,
)

# The order deletion steps run in: the source holding the account last.
DELETION_ORDER = ("strategies", "credentials", "trades", "analytics", "users")
DELETE = "mutation Delete($password: String!) { deleteAccount(password: $password) }"


async def populate(sources: Sources, user: UserRecord) -> None:
    """Give the user something in every database."""
    rows = []
    for index in range(2):
        strategy = await make_strategy(sources, user, status="ACTIVE" if index else "STOPPED")
        rows += [trade_row(strategy, entry_time=NOW - timedelta(days=d, hours=1)) for d in (1, 2)]
    await make_trades(sources, rows)
    await make_credentials(sources, user)
    await refresh_analytics(sources)
    async with sources.analytics.engine.begin() as conn:
        await analytics_source.record_activity(conn=conn, user_id=user.id, kind="SIGNED_IN")
    for db in (sources.strategies.db, sources.credentials.db):
        claim = await idempotency.claim_key(
            db=db,
            user_id=user.id,
            operation="test",
            key="k1",
            request_fingerprint="f",
            ttl_seconds=60,
            lease=20,
            owner="test:1",
        )
        await idempotency.complete_key(db=db, claim=claim, result_id="r")
    await sources.users.db["refresh_tokens"].insert_one({"_id": f"rt-{user.id}", "userId": user.id})


async def remains(sources: Sources, user: UserRecord) -> dict[str, int]:
    """How much of the user each database still holds."""
    oid = {"$in": [user.id, ObjectId(user.id)]}
    counts = {
        "users": await sources.users.db["users"].count_documents({"_id": oid}),
        "refresh_tokens": await sources.users.db["refresh_tokens"].count_documents({"userId": oid}),
        "deletion_job": await sources.users.db[deletion_jobs.COLLECTION].count_documents(
            {"_id": user.id}
        ),
        "strategies": await sources.strategies.db["strategies"].count_documents({"userId": oid}),
        "strategy_keys": await sources.strategies.db[idempotency.COLLECTION].count_documents(
            {"userId": user.id}
        ),
        "credentials": await sources.credentials.db["credentials"].count_documents({"userId": oid}),
        "credential_keys": await sources.credentials.db[idempotency.COLLECTION].count_documents(
            {"userId": user.id}
        ),
    }
    async with sources.trades.engine.connect() as conn:
        counts["trades"] = (
            await conn.execute(select(func.count()).where(trades.c.user_id == user.id))
        ).scalar_one()
    async with sources.analytics.engine.connect() as conn:
        for name, table in (("metrics", daily_strategy_metrics), ("activity", activity_events)):
            counts[name] = (
                await conn.execute(select(func.count()).where(table.c.user_id == user.id))
            ).scalar_one()
    return counts


def nothing(counts: dict[str, int]) -> bool:
    return not any(counts.values())


@pytest.fixture
async def victim_and_bystander(sources) -> tuple[UserRecord, UserRecord, dict[str, int]]:
    victim = await make_user(sources)
    bystander = await make_user(sources)
    await populate(sources, victim)
    await populate(sources, bystander)
    return victim, bystander, await remains(sources, bystander)


async def test_delete_account_removes_the_user_from_all_five_databases(
    client, sources, settings, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    before = await remains(sources, victim)
    assert all(before[key] for key in ("users", "trades", "metrics", "activity", "credentials"))

    body = await gql(client, DELETE, {"password": PASSWORD}, token=token_for(settings, victim))

    assert body == {"data": {"deleteAccount": True}}
    assert await remains(sources, victim) == dict.fromkeys(bystander_before, 0)
    assert await remains(sources, bystander) == bystander_before


async def test_a_deleted_account_can_neither_use_its_token_nor_sign_in(
    client, sources, settings, victim_and_bystander
):
    victim, _, _ = victim_and_bystander
    token = token_for(settings, victim)
    await gql(client, DELETE, {"password": PASSWORD}, token=token)

    me = await gql(client, "{ me { id } }", token=token)
    login = await gql(
        client,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
        {"e": victim.email, "p": PASSWORD},
    )

    assert error_codes(me) == ["UNAUTHENTICATED"]
    assert error_codes(login) == ["UNAUTHENTICATED"]


async def test_delete_account_with_a_wrong_password_changes_nothing(
    client, sources, settings, victim_and_bystander
):
    victim, _, _ = victim_and_bystander
    before = await remains(sources, victim)

    body = await gql(
        client, DELETE, {"password": "not the password"}, token=token_for(settings, victim)
    )

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await remains(sources, victim) == before
    me = await gql(client, "{ me { id } }", token=token_for(settings, victim))
    assert me["data"]["me"]["id"] == gid(victim)


async def test_delete_account_needs_a_token(client, sources, victim_and_bystander):
    victim, _, _ = victim_and_bystander
    before = await remains(sources, victim)

    body = await gql(client, DELETE, {"password": PASSWORD})

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await remains(sources, victim) == before


async def test_tokens_stop_working_as_soon_as_the_deletion_begins(
    client, sources, settings, victim_and_bystander
):
    victim, _, _ = victim_and_bystander
    token = token_for(settings, victim)

    await begin_deletion(sources, victim.id)

    assert error_codes(await gql(client, "{ me { id } }", token=token)) == ["UNAUTHENTICATED"]


def test_every_source_forgets_the_user_and_the_account_holder_goes_last(sources):
    assert [source.name for source in steps(sources)] == list(DELETION_ORDER)


@pytest.mark.parametrize("steps_done", range(len(DELETION_ORDER) + 1))
async def test_a_deletion_killed_after_any_step_is_finished_by_recovery(
    sources, victim_and_bystander, steps_done
):
    victim, bystander, bystander_before = victim_and_bystander
    # The process dies right after `steps_done` steps: what it leaves behind is
    # exactly the job and the sources not yet done.
    await begin_deletion(sources, victim.id)
    await run_steps(sources, victim.id, steps(sources)[:steps_done])

    result = await finish_deletions(sources, settle_seconds=0)

    assert result.finished == (victim.id,)
    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_a_deletion_killed_before_the_user_was_marked_is_finished_by_recovery(
    sources, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    await deletion_jobs.record_job(db=sources.users.db, user_id=victim.id)

    await finish_deletions(sources, settle_seconds=0)

    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_a_user_marked_as_deleting_without_a_job_is_finished_by_recovery(
    sources, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    await mark_user_deleting(db=sources.users.db, user_id=victim.id)

    await finish_deletions(sources, settle_seconds=0)

    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_recovering_twice_or_concurrently_is_harmless(sources, victim_and_bystander):
    victim, bystander, bystander_before = victim_and_bystander
    await begin_deletion(sources, victim.id)
    await run_steps(sources, victim.id, steps(sources)[:2])

    await asyncio.gather(
        finish_deletions(sources, settle_seconds=0), finish_deletions(sources, settle_seconds=0)
    )
    again = await finish_deletions(sources, settle_seconds=0)

    assert again.finished == ()
    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


@pytest.mark.slow
async def test_the_cli_finishes_interrupted_deletions(settings, sources, victim_and_bystander):
    victim, bystander, bystander_before = victim_and_bystander
    await begin_deletion(sources, victim.id)
    await run_steps(sources, victim.id, steps(sources)[:3])

    result = await asyncio.to_thread(
        subprocess.run,
        [*GATEWAY, "accounts", "finish-deletions"],
        env={**environment(settings), "DELETION_SETTLE_SECONDS": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr
    assert "1 finished, 0 pending" in result.stderr
    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_the_server_finishes_interrupted_deletions_when_it_starts(
    settings, sources, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    await begin_deletion(sources, victim.id)
    await run_steps(sources, victim.id, steps(sources)[:1])
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        for _ in range(100):
            if nothing(await remains(sources, victim)):
                break
            await asyncio.sleep(0.05)

    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_a_source_down_postpones_the_end_of_a_deletion_until_the_sweep(
    settings: Settings, sources, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    broken = create_app(
        settings.model_copy(
            update={
                "trades_database_url": "postgresql+asyncpg://postgres@127.0.0.1:9/x",
                **every_source_timeout(1.0),
                "deletion_sweep_interval_seconds": 3600.0,
            }
        )
    )
    async with (
        broken.router.lifespan_context(broken),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=broken), base_url="http://gateway.test"
        ) as client,
    ):
        body = await gql(client, DELETE, {"password": PASSWORD}, token=token_for(settings, victim))
        half_done: dict[str, Any] = await remains(sources, victim)

    assert body == {"data": {"deleteAccount": True}}
    assert half_done["strategies"] == half_done["credentials"] == 0
    assert half_done["trades"] > 0
    assert half_done["deletion_job"] == 1

    await finish_deletions(sources, settle_seconds=0)

    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_fields_after_delete_account_in_the_same_request_act_as_no_one(
    client, sources, settings, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    query = """
    mutation Both($password: String!) {
      deleteAccount(password: $password)
      createStrategy(input: {name: "ghost", code: "", instrument: "BTCUSDT", broker: "binance"}) {
        strategy { id }
      }
    }
    """

    body = await gql(client, query, {"password": PASSWORD}, token=token_for(settings, victim))

    # createStrategy is non-null, so its failure nulls the whole data.
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["path"] == ["createStrategy"]
    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_a_write_that_lands_after_the_first_pass_is_removed_when_the_job_settles(
    sources, victim_and_bystander
):
    victim, bystander, bystander_before = victim_and_bystander
    # Production settles after a wait; the first pass leaves the job behind.
    await delete_account(sources, victim.id, settle_seconds=60)
    # A request authenticated before the deletion began writes after the first pass.
    await make_strategy(sources, victim, name="written while deleting")
    await make_credentials(sources, victim)

    too_early = await finish_deletions(sources, settle_seconds=60)
    left_over = await remains(sources, victim)
    await sources.users.db[deletion_jobs.COLLECTION].update_one(
        {"_id": victim.id}, {"$set": {"completedAt": NOW - timedelta(minutes=5)}}
    )
    settled = await finish_deletions(sources, settle_seconds=60)

    assert too_early.finished == ()
    assert left_over["deletion_job"] == 1
    assert settled.finished == (victim.id,)
    assert nothing(await remains(sources, victim))
    assert await remains(sources, bystander) == bystander_before


async def test_a_job_waiting_out_the_settle_window_is_reported_as_settling(
    sources, victim_and_bystander
):
    victim, _bystander, _before = victim_and_bystander
    await begin_deletion(sources, victim.id)

    result = await finish_deletions(sources, settle_seconds=3600)

    assert (result.finished, result.failed, result.settling) == ((), (), (victim.id,))
    again = await finish_deletions(sources, settle_seconds=0)
    assert again.finished == (victim.id,)
