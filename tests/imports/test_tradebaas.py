"""`gateway import tradebaas` in-process against the suite's servers: a Tradebaas PostgreSQL
made from its DDL and a SQLite trades file of thousands of rows, moved into the strategies
and trades sources, verified, run again, dry-run, resumed, and the dashboard of an imported
user over HTTP against figures computed from the generated legacy data."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from datasources import Sources, imported
from datasources.analytics import daily_strategy_metrics
from datasources.trades import trades
from gateway.imports.tradebaas import (
    ImportOptions,
    ImportReport,
    TradebaasInputError,
    import_tradebaas,
    strategy_id_of,
)
from tests.helpers import data_of, gql, make_user, token_for
from tests.imports.conftest import TradebaasLegacy
from tests.imports.tradebaas_legacy import Tradebaas, generate, write_strategies, write_trades

USERS = 120


@pytest.fixture(scope="module")
def platform() -> Tradebaas:
    return generate(USERS)


async def set_up(sources: Sources, legacy: TradebaasLegacy, platform: Tradebaas) -> dict[str, str]:
    """Fill both Tradebaas databases; give every mapped Tradebaas user a gateway account with
    its email. Returns the gateway id of each."""
    await write_strategies(legacy.uri, platform)
    write_trades(legacy.trades_path, platform.trades)
    accounts = {}
    for user in platform.mapped:
        account = await make_user(sources, email=platform.email_of(user))
        accounts[user] = account.id
    return accounts


async def run_import(sources: Sources, legacy: TradebaasLegacy, **options: Any) -> ImportReport:
    return await import_tradebaas(
        sources=sources,
        options=ImportOptions(
            **{
                "strategies_uri": legacy.uri,
                "trades_path": legacy.trades_path,
                "batch_size": 300,
                **options,
            }
        ),
    )


async def snapshot(sources: Sources) -> dict[str, list[Any]]:
    """Everything the import writes: strategy documents, trade rows, their bookkeeping."""
    strategies = [doc async for doc in sources.strategies.db.strategies.find({}).sort("_id")]
    async with sources.trades.engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(select(trades).order_by(trades.c.id))]
        kept = []
        if await imported.has_imported_trades(conn=conn):
            bookkeeping = imported.imported_trades
            query = select(bookkeeping).order_by(bookkeeping.c.legacy_id)
            kept = [tuple(r) for r in await conn.execute(query)]
    async with sources.analytics.engine.connect() as conn:
        metrics = [
            tuple(r)
            for r in await conn.execute(
                select(daily_strategy_metrics).order_by(
                    daily_strategy_metrics.c.strategy_id, daily_strategy_metrics.c.day
                )
            )
        ]
    return {"strategies": strategies, "trades": rows, "imported": kept, "metrics": metrics}


async def test_an_import_moves_strategies_and_trades_into_our_shapes_and_verifies_them(
    sources, tradebaas, platform
):
    accounts = await set_up(sources, tradebaas, platform)

    report = await run_import(sources, tradebaas)

    mapped = set(platform.mapped)
    expected_strategies = [s for s in platform.strategies if s.row["user_id"] in mapped]
    expected_trades = platform.imported_trades()
    assert report.verified, report.failed
    assert report.tallies["strategies"].legacy == report.tallies["strategies"].stored
    assert report.tallies["strategies"].stored == len(expected_strategies)
    assert report.tallies["trades"].stored == report.tallies["trades"].legacy
    assert report.tallies["trades"].stored == len(expected_trades)
    assert report.strategies_written == len(expected_strategies)
    assert report.trades_written == len(expected_trades)
    assert report.sums["pnl"][0] == report.sums["pnl"][1]
    assert len(report.duplicates) == sum(t.duplicate for t in platform.trades)
    assert report.orphan_trades == sum(
        t.row["strategyName"] == "Retired Bot" for t in expected_trades
    )
    # Users without a gateway account are reported, as is every row of theirs.
    unmapped = {user for user, _ in platform.users} - mapped
    assert set(report.unmapped_users) == unmapped
    assert report.ok is False

    # Strategies: ids derived from the uuids, owners mapped, statuses and fields kept.
    docs = {str(d["_id"]): d async for d in sources.strategies.db.strategies.find({})}
    for strategy in expected_strategies:
        row = strategy.row
        doc = docs[strategy_id_of(row["id"], row["created_at"])]
        assert str(doc["userId"]) == accounts[row["user_id"]]
        assert doc["status"] == row["status"]
        assert doc["environment"] == row["environment"]
        assert doc["instrument"] == row["instrument"]
        assert doc["broker"] == row["broker"]
        assert doc["config"] == row["config"]
        assert doc["autoReconnect"] is (row["auto_reconnect"] is not False)
        assert doc["name"].startswith(row["strategy_name"])
    names = Counter((str(d["userId"]), d["name"]) for d in docs.values())
    assert max(names.values()) == 1  # unique per user

    # Trades: per user, the count and the exact sums of pnl and fees of the legacy rows.
    expected: dict[str, list[Any]] = {}
    for trade in expected_trades:
        totals = expected.setdefault(accounts[trade.owner], [0, Decimal(0), Decimal(0)])
        totals[0] += 1
        totals[1] += trade.pnl or Decimal(0)
        totals[2] += trade.fees
    async with sources.trades.engine.connect() as conn:
        stored = await imported.imported_trade_totals(conn=conn, platform="tradebaas")
        sides = set((await conn.execute(select(trades.c.side).distinct())).scalars())
        statuses = set((await conn.execute(select(trades.c.status).distinct())).scalars())
    assert {u: [t.trades, t.pnl, t.fees] for u, t in stored.items()} == expected
    assert sides == {"buy", "sell"}
    assert statuses == {"open", "closed"}

    # Analytics were refreshed for the users with imported trades.
    async with sources.analytics.engine.connect() as conn:
        users_with_metrics = set(
            (await conn.execute(select(daily_strategy_metrics.c.user_id).distinct())).scalars()
        )
    counted = {accounts[t.owner] for t in expected_trades if t.counted}
    assert users_with_metrics == counted


async def test_running_it_again_changes_nothing(sources, tradebaas, platform):
    await set_up(sources, tradebaas, platform)
    first = await run_import(sources, tradebaas)
    before = await snapshot(sources)

    second = await run_import(sources, tradebaas)

    assert await snapshot(sources) == before
    assert (second.strategies_written, second.trades_written) == (0, 0)
    assert second.strategies_present == first.strategies_written
    assert second.trades_present == first.trades_written
    assert second.tallies == first.tallies
    assert second.sums == first.sums
    assert second.refused_trades == first.refused_trades


async def test_a_dry_run_writes_nothing_and_reports_what_the_import_then_writes(
    sources, tradebaas, platform
):
    await set_up(sources, tradebaas, platform)

    dry = await run_import(sources, tradebaas, dry_run=True)
    empty = await snapshot(sources)
    real = await run_import(sources, tradebaas)

    assert empty == {"strategies": [], "trades": [], "imported": [], "metrics": []}
    assert await sources.users.db.imports.count_documents({}) == 0
    assert (dry.strategies_written, dry.trades_written, dry.orphan_trades) == (
        real.strategies_written,
        real.trades_written,
        real.orphan_trades,
    )
    assert dry.refused_trades == real.refused_trades
    assert dry.refused_strategies == real.refused_strategies
    assert dry.renamed == real.renamed
    assert dry.statuses == real.statuses


async def test_a_run_resumed_from_its_checkpoint_ends_as_a_whole_run(sources, tradebaas, platform):
    await set_up(sources, tradebaas, platform)
    await run_import(sources, tradebaas)
    whole = await snapshot(sources)
    # As if killed after the batch that ended at `cut`: the later trades are not in.
    legacy_ids = sorted(str(t.row["id"]) for t in platform.trades)
    cut = legacy_ids[len(legacy_ids) // 2]
    bookkeeping = imported.imported_trades
    async with sources.trades.engine.begin() as conn:
        beyond = select(bookkeeping.c.trade_id).where(bookkeeping.c.legacy_id > cut)
        missing = len((await conn.execute(beyond)).all())
        await conn.execute(trades.delete().where(trades.c.id.in_(beyond)))
        await conn.execute(bookkeeping.delete().where(bookkeeping.c.legacy_id > cut))
    await imported.save_checkpoint(
        db=sources.users.db,
        key=f"tradebaas:{tradebaas.trades_path.resolve()}",
        values={"lastTradeId": cut},
    )

    resumed = await run_import(sources, tradebaas)

    assert resumed.resumed_after == cut
    assert missing > 0
    assert (resumed.trades_written, resumed.trades_present) == (missing, 0)
    assert resumed.verified
    after = await snapshot(sources)
    assert after["strategies"] == whole["strategies"]
    assert after["metrics"] == whole["metrics"]
    # The same trade rows (those after the cut under new ids).
    assert sorted((r[1:] for r in after["trades"]), key=repr) == sorted(
        (r[1:] for r in whole["trades"]), key=repr
    )
    assert await sources.users.db.imports.count_documents({}) == 0


DASHBOARD = """
{ dashboard { pnl { allTime } strategyCounts { active paused stopped error total } } }
"""


async def test_the_dashboard_of_an_imported_user_shows_the_figures_of_its_legacy_data(
    client, sources, settings, tradebaas, platform
):
    accounts = await set_up(sources, tradebaas, platform)
    await run_import(sources, tradebaas)
    # The mapped user with the most imported trades.
    owners = Counter(t.owner for t in platform.imported_trades())
    user = owners.most_common(1)[0][0]
    (account,) = await _users(sources, accounts[user])

    body = await gql(client, DASHBOARD, token=token_for(settings, account))

    dashboard = data_of(body)["dashboard"]
    mine = [t for t in platform.imported_trades() if t.owner == user]
    all_time = sum(((t.pnl or Decimal(0)) - t.fees for t in mine if t.counted), Decimal(0))
    assert Decimal(dashboard["pnl"]["allTime"]) == all_time
    statuses = Counter(s.row["status"] for s in platform.strategies if s.row["user_id"] == user)
    counts = dashboard["strategyCounts"]
    assert counts["total"] == sum(statuses.values())
    for status in ("active", "paused", "stopped", "error"):
        assert counts[status] == statuses[status], status


async def _users(sources: Sources, user_id: str) -> list[Any]:
    from datasources import users as users_source  # noqa: PLC0415

    return await users_source.find_users(db=sources.users.db, ids=[user_id])


async def test_a_mapping_file_maps_by_email_or_by_gateway_id_and_bad_ones_change_nothing(
    sources, tradebaas, platform, tmp_path
):
    accounts = await set_up(sources, tradebaas, platform)
    first, second = platform.mapped[:2]
    by_id = tmp_path / "by-id.csv"
    by_id.write_text(f"tradebaas_user_id,gateway_user_id\n{first},{accounts[first]}\n")
    by_email = tmp_path / "by-email.csv"
    by_email.write_text(f"tradebaas_user_id,email\n{second},{platform.email_of(second).upper()}\n")
    bad = {
        "header": "user,email\n",
        "fields": f"tradebaas_user_id,email\n{first},a@example.com,extra\n",
        "twice": f"tradebaas_user_id,email\n{first},a@example.com\n{first},b@example.com\n",
        "id": f"tradebaas_user_id,gateway_user_id\n{first},not-an-id\n",
    }
    for name, text in bad.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        with pytest.raises(TradebaasInputError):
            await run_import(sources, tradebaas, users_path=path)
    with pytest.raises(TradebaasInputError, match="no trades file"):
        await run_import(sources, tradebaas, trades_path=tmp_path / "missing.db")
    assert await sources.strategies.db.strategies.count_documents({}) == 0
    async with sources.trades.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(trades))).scalar() == 0

    report = await run_import(sources, tradebaas, users_path=by_id)
    assert report.verified
    assert await _trade_owners(sources) <= {accounts[first]}
    report = await run_import(sources, tradebaas, users_path=by_email)

    assert report.verified
    assert await _trade_owners(sources) <= {accounts[first], accounts[second]}
    assert len(report.unmapped_users) == 0
    strategy_owners = {
        str(doc["userId"]) async for doc in sources.strategies.db.strategies.find({})
    }
    assert strategy_owners <= {accounts[first], accounts[second]}


async def _trade_owners(sources: Sources) -> set[str]:
    async with sources.trades.engine.connect() as conn:
        return set((await conn.execute(select(trades.c.user_id).distinct())).scalars())


async def test_an_unreachable_strategies_database_is_refused_without_naming_it(
    sources, tradebaas, platform
):
    write_trades(tradebaas.trades_path, platform.trades[:10])
    uri = "postgresql://postgres:s3cret-pw@127.0.0.1:1/tradebaas"

    with pytest.raises(TradebaasInputError) as raised:
        await run_import(sources, tradebaas, strategies_uri=uri)

    assert "cannot read the --strategies database" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)
    assert await sources.strategies.db.strategies.count_documents({}) == 0
