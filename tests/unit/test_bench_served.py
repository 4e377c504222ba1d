"""The dashboard bench's helpers for served variants (bench/served.py, bench/dashboard.py):
CPU accounting from /proc, URLs for proxies and Node, the peer's install check, the report's
tables and the answers' equality check; and the peer's wire spellings (bench/peer/format.mjs)
against the gateway's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bench.dashboard import Latency, Round, check_same_answer, measure_table, round_table
from bench.served import (
    INSTALL_STAMP,
    PEER_DIR,
    cpu_seconds_of_stat,
    descendants,
    lock_digest,
    needs_install,
    node_postgres_url,
    parent_of_stat,
    process_cpu,
    tree_cpu,
)
from schema._ids import global_id
from schema._scalars import _serialize_date_time, _serialize_decimal
from tests.faults import url_via


def test_cpu_seconds_are_utime_plus_stime_after_the_command_name() -> None:
    # A command name may hold spaces and parentheses: fields are counted after the last ')'.
    fields = ["S", *["0"] * 10, "250", "150", *["0"] * 30]
    stat = "4242 (node (peer) x) " + " ".join(fields)
    assert cpu_seconds_of_stat(stat, 100) == pytest.approx(4.0)


def test_process_cpu_follows_this_process_cpu_time() -> None:
    before, clock = process_cpu(os.getpid()), time.process_time()
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:  # burn 0.1 s of CPU
        pass
    spent, measured = time.process_time() - clock, process_cpu(os.getpid()) - before
    # /proc counts in clock ticks (10 ms here): the same CPU time, to a few ticks.
    assert measured == pytest.approx(spent, abs=0.03)
    assert process_cpu(2**22 + 1) == 0.0  # no such process


def test_the_parent_pid_is_read_after_the_command_name() -> None:
    assert parent_of_stat("4242 (uvicorn (worker) 1) S 4200 4242 4200 0") == 4200


@pytest.mark.slow
def test_a_supervisor_is_charged_its_workers_and_their_children() -> None:
    # sh forks a sleep: a grandchild of this process, as a worker's helper would be.
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(below := descendants(shell.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(below) == 1
        assert {shell.pid, *below} <= set(descendants(os.getpid()))
        assert set(tree_cpu(shell.pid)) == {shell.pid, *below}
    finally:
        for pid in descendants(shell.pid):
            os.kill(pid, 15)
        shell.wait(5)


def test_urls_through_a_proxy_keep_credentials_and_connect_mongo_directly() -> None:
    assert (
        url_via("mongodb://127.0.0.1:27017/gw_user_db", 4000)
        == "mongodb://127.0.0.1:4000/gw_user_db?directConnection=true"
    )
    assert (
        url_via("postgresql+asyncpg://postgres@127.0.0.1:5432/trades", 4001)
        == "postgresql+asyncpg://postgres@127.0.0.1:4001/trades"
    )
    assert node_postgres_url("postgresql+asyncpg://postgres@127.0.0.1:5432/trades") == (
        "postgresql://postgres@127.0.0.1:5432/trades"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        node_postgres_url("mongodb://127.0.0.1/users")


def test_the_peer_is_installed_again_when_its_lockfile_changes(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "peer"}')
    (tmp_path / "package-lock.json").write_text('{"lockfileVersion": 3}')
    assert needs_install(tmp_path)  # no node_modules at all
    (tmp_path / "node_modules").mkdir()
    assert needs_install(tmp_path)  # installed by someone else: no stamp
    (tmp_path / "node_modules" / INSTALL_STAMP).write_text(lock_digest(tmp_path) + "\n")
    assert not needs_install(tmp_path)
    (tmp_path / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}')
    assert needs_install(tmp_path)


def _latency(wall: list[float], cpu: list[float]) -> Latency:
    return Latency(samples=wall, cpu=cpu)


def test_the_tables_give_the_ratios_of_issue_11() -> None:
    round_ = Round(
        round_trip_ms=2.0,
        load="1.00 1.20 1.30",
        latency={
            "gateway": _latency([30.0, 30.0, 40.0], [15.0, 15.0, 15.0]),
            "floor": _latency([20.0, 20.0, 20.0], [10.0, 10.0, 10.0]),
            "gateway-http": _latency([32.0, 32.0, 32.0], [16.0, 16.0, 16.0]),
            "peer": _latency([16.0, 16.0, 16.0], [4.0, 4.0, 4.0]),
        },
    )
    table = measure_table([round_])
    assert "| full dashboard, 2 ms added per database round trip" in table
    assert "| x1.50 (CPU 15.0 ms vs 10.0 ms per request) | ≤ x1.2 |" in table
    # 1000 / 16 = 62.5 requests per CPU-second against 1000 / 4 = 250: x0.25
    assert "| x0.25 (62 vs 250 requests per CPU-second; p50 32.0 vs 16.0 ms) | ≥ x1 |" in table

    lines = round_table(round_)
    assert lines[0] == "2 ms added per database round trip (load average before: 1.00 1.20 1.30)"
    assert any(line.split()[:2] == ["peer", "16.00"] and line.endswith("250.0") for line in lines)
    ratio = next(line for line in lines if line.startswith("gateway-http / peer:"))
    assert "p50 x2.00" in ratio
    assert "CPU x4.00" in ratio
    assert "requests per CPU-second x0.25" in ratio
    # A variant not run leaves its rows out rather than failing.
    assert not any(line.startswith("gateway / floor-http") for line in lines)


def test_a_round_without_the_peer_reports_only_the_floor_row() -> None:
    round_ = Round(
        0.0,
        "0.5 0.5 0.5",
        {"gateway": _latency([3.0, 3.0], [2.0, 2.0]), "floor": _latency([1.0, 1.0], [0.0, 0.0])},
    )
    table = measure_table([round_]).splitlines()
    assert len(table) == 3
    assert "0 ms added" in table[2]
    assert Latency([1.0, 1.0], [0.0, 0.0]).row()["per_cpu_second"] == 0.0  # no CPU seen


def test_answers_must_be_the_same_json_apart_from_the_request_id() -> None:
    dashboard = {
        "recentTrades": [{"pnl": "1.5"}],
        "activeStrategies": [],
        "equityCurve": [],
        "recentActivity": [],
    }
    answer = {"data": {"dashboard": dashboard}}
    same = json.dumps(answer).encode()
    with_id = json.dumps({**answer, "extensions": {"requestId": "r1"}}).encode()
    other = json.loads(same)
    other["data"]["dashboard"]["recentTrades"][0]["pnl"] = "1.50"
    calls = {"gateway": with_id, "peer": same}
    calls_with = {**calls, "floor": same, "floor-http": same}
    check_same_answer(calls_with)  # passes: the request id is the gateway's own
    with pytest.raises(SystemExit, match=r"peer and the gateway disagree:\n.*recentTrades\[0\]"):
        check_same_answer({**calls_with, "peer": json.dumps(other).encode()})
    errors = json.dumps({"data": None, "errors": [{"message": "no"}]}).encode()
    with pytest.raises(SystemExit, match="peer answered with errors"):
        check_same_answer({**calls_with, "peer": errors})


@pytest.mark.slow  # starts Node (about 0.1 s): no package of the peer's is needed
@pytest.mark.skipif(shutil.which("node") is None, reason="Node is not installed")
def test_the_peer_spells_amounts_times_and_ids_as_the_gateway_does() -> None:
    amounts = ["0", "-0.00000000", "12.34500000", "100.00000000", "-0.5", "0.00000001",
               "123456789012345678.12345678", "7"]  # fmt: skip
    moments = [
        datetime(2026, 2, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 2, 1, 9, 30, 0, 120000, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ]
    pg_times = ["2026-02-01 09:30:00+00", "2026-02-01 09:30:00.1234+00", "2026-02-01 09:30:00.5+00"]
    script = f"""
        import * as f from {json.dumps((PEER_DIR / "format.mjs").as_uri())};
        const amounts = {json.dumps(amounts)};
        const moments = {json.dumps([m.isoformat() for m in moments])};
        console.log(JSON.stringify({{
          amounts: amounts.map(f.money),
          difference: f.formatMoney(f.parseMoney('1.5') - f.parseMoney('2.25')),
          moments: moments.map((m) => f.isoFromDate(new Date(m))),
          pg: {json.dumps(pg_times)}.map(f.isoFromPg),
          id: f.globalId('Trade', '42'),
          days: [f.addDays('2026-03-01', -1), f.addDays('2026-12-31', 1)],
        }}));
    """
    found = json.loads(
        subprocess.run(
            ["node", "--input-type=module", "-e", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    )
    assert found["amounts"] == [_serialize_decimal(Decimal(a)) for a in amounts]
    assert found["difference"] == _serialize_decimal(Decimal("1.5") - Decimal("2.25"))
    assert found["moments"] == [_serialize_date_time(m) for m in moments]
    assert found["pg"] == [
        _serialize_date_time(datetime.fromisoformat(t.replace(" ", "T") + ":00")) for t in pg_times
    ]
    assert found["id"] == global_id("Trade", "42")
    assert found["days"] == ["2026-02-28", "2027-01-01"]
