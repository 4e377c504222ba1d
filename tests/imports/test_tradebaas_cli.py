"""`gateway import tradebaas` as a real process: killed at several points and run again, it
ends as one uninterrupted run does; the dry run, a bad mapping file and the exit codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from datasources import Sources
from datasources.trades import trades
from tests.helpers import run
from tests.imports.conftest import Counts, TradebaasLegacy, kill_when
from tests.imports.test_tradebaas import run_import, set_up, snapshot
from tests.imports.tradebaas_legacy import generate

pytestmark = pytest.mark.slow


async def counts(sources: Sources) -> Counts:
    async with sources.trades.engine.connect() as conn:
        written = (await conn.execute(select(func.count()).select_from(trades))).scalar_one()
    return {
        "strategies": await sources.strategies.db.strategies.count_documents({}),
        "trades": int(written),
        "checkpoints": await sources.users.db.imports.count_documents({}),
    }


def arguments(legacy: TradebaasLegacy, *more: str) -> list[str]:
    return [
        "import",
        "tradebaas",
        "--strategies",
        legacy.uri,
        "--trades",
        str(legacy.trades_path),
        *more,
    ]


def same_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Trade rows without their ids (a run writes them in its own order)."""
    return sorted((row[1:] for row in rows), key=repr)


async def test_killed_at_several_points_and_run_again_it_ends_as_one_uninterrupted_run(
    sources, settings, tradebaas, tmp_path
):
    platform = generate(300, seed=5)
    await set_up(sources, tradebaas, platform)
    reference = await run_import(sources, tradebaas, batch_size=200)
    expected = await snapshot(sources)
    total = len(expected["trades"])
    await sources.trades.clear()
    await sources.analytics.clear()
    await sources.strategies.db.strategies.delete_many({})
    async with sources.trades.engine.begin() as conn:
        from datasources import imported  # noqa: PLC0415

        await imported.drop_imported_trades(conn=conn)

    log = tmp_path / "import.log"
    points: list[Callable[[Counts], bool]] = [
        lambda c: c["strategies"] > 0,  # the strategies pass, before any trade
        lambda c: c["trades"] >= 1000,
        lambda c: c["trades"] >= total // 2,
        # The trades pass is over (its checkpoint dropped): verifying or refreshing.
        lambda c: c["trades"] == total and c["checkpoints"] == 0,
    ]
    args = arguments(tradebaas, "--batch-size", "200")
    killed_at = [
        await kill_when(settings, args, log, point, lambda: counts(sources)) for point in points
    ]
    final = run(settings, *arguments(tradebaas))

    assert final.returncode == 1, final.stderr  # the generated data has rows to report
    assert "users whose verification failed" not in final.stderr
    assert f"trades: {reference.tallies['trades'].legacy} / " in final.stderr
    after = await snapshot(sources)
    assert after["strategies"] == expected["strategies"]
    assert after["metrics"] == expected["metrics"]
    assert same_rows(after["trades"]) == same_rows(expected["trades"])
    assert (await counts(sources))["checkpoints"] == 0
    assert all(at["trades"] < total for at in killed_at[:3]), killed_at
    assert all(at["checkpoints"] == 1 for at in killed_at[1:3]), killed_at
    assert "Traceback" not in log.read_text()


async def test_a_dry_run_then_a_run_and_a_bad_mapping_file_exit_as_documented(
    sources, settings, tradebaas, tmp_path
):
    platform = generate(60, seed=9)
    await set_up(sources, tradebaas, platform)
    bad = tmp_path / "users.csv"
    bad.write_text("who,email\n")

    refused = run(settings, *arguments(tradebaas, "--users", str(bad)))
    dry = run(settings, *arguments(tradebaas, "--dry-run"))
    empty = await counts(sources)
    real = run(settings, *arguments(tradebaas))

    assert refused.returncode == 2, refused.stderr
    assert "line 1: the header must be" in refused.stderr
    assert dry.returncode == 1, dry.stderr  # it would leave rows out: they are reported
    assert "dry run" in dry.stderr
    assert empty == {"strategies": 0, "trades": 0, "checkpoints": 0}
    assert real.returncode == 1, real.stderr
    written = next(line for line in real.stderr.splitlines() if line.startswith("written:"))
    assert written.replace("written:", "would write:") in dry.stderr
    assert "analytics refreshed for" in real.stderr
    assert "Traceback" not in refused.stderr + dry.stderr + real.stderr
