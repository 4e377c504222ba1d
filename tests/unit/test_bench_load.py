"""The load test's arithmetic (bench/load.py): percentiles, phases, error codes, recovery."""

from __future__ import annotations

import json

import pytest

from bench.load import (
    NO_ANSWER,
    Phase,
    Record,
    choosers,
    client_kinds,
    codes_of,
    percentile,
    recovery,
    summarize,
)


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 99) == pytest.approx(99.01)
    assert percentile([1.0, 2.0, 10.0], 100) == 10.0


def test_each_request_counts_in_the_phase_it_started_in_and_once_per_code() -> None:
    phases = [Phase("normal", 0.0, 10.0), Phase("stall", 10.0, 30.0)]
    records = [
        Record("me", "warm-up", -1.0, 0.5),  # not a reported phase: left out
        Record("me", "normal", 1.0, 0.010),
        Record("me", "normal", 2.0, 0.030),
        # started in normal, answered during the stall: still normal's
        Record("dashboard", "normal", 9.9, 5.0, frozenset({"SOURCE_UNAVAILABLE"})),
        Record("dashboard", "stall", 11.0, 0.05, frozenset({"SOURCE_UNAVAILABLE", "INTERNAL"})),
        Record("dashboard", "stall", 12.0, 15.0, answered=False),
        Record("dashboard", "stall", 28.0, 0.04),
    ]
    rows = {(row.phase, row.kind): row for row in summarize(records, phases, ("dashboard", "me"))}

    me = rows[("normal", "me")]
    assert (me.requests, me.rate, me.failed, me.codes) == (2, 0.2, 0, {})
    assert me.p50 == pytest.approx(20.0)
    assert me.max == pytest.approx(30.0)
    assert rows[("normal", "dashboard")].codes == {"SOURCE_UNAVAILABLE": 1}

    stall = rows[("stall", "dashboard")]
    assert (stall.requests, stall.failed, stall.no_answer) == (3, 2, 1)
    assert stall.rate == pytest.approx(3 / 20)
    assert stall.codes == {"SOURCE_UNAVAILABLE": 1, "INTERNAL": 1, NO_ANSWER: 1}
    assert stall.max == pytest.approx(15_000.0)  # no answer counts at the client timeout

    empty = rows[("stall", "me")]
    assert (empty.requests, empty.rate, empty.p99) == (0, 0.0, 0.0)


def test_recovery_reads_only_requests_started_after_the_source_returned() -> None:
    records = [
        Record("dashboard", "stall", 19.0, 3.0, frozenset({"SOURCE_UNAVAILABLE"})),
        Record("dashboard", "recovered", 20.5, 0.1, frozenset({"SOURCE_UNAVAILABLE"})),
        Record("dashboard", "recovered", 21.0, 0.1),
        Record("dashboard", "recovered", 23.0, 0.1, frozenset({"SOURCE_UNAVAILABLE"})),
        Record("dashboard", "recovered", 24.0, 0.1),
        Record("me", "recovered", 20.2, 0.1),
    ]
    found = recovery(records, 20.0, "dashboard")
    assert found.first_whole == pytest.approx(1.0)
    assert found.last_failed == pytest.approx(3.0)
    assert recovery(records, 20.0, "me").last_failed is None
    assert recovery([], 20.0, "me").first_whole is None


def test_error_codes_of_an_answer() -> None:
    answer = {
        "data": {"dashboard": None},
        "errors": [
            {"message": "a", "extensions": {"code": "SOURCE_UNAVAILABLE"}},
            {"message": "b", "extensions": {"code": "SOURCE_UNAVAILABLE"}},
            {"message": "c"},
        ],
    }
    assert codes_of(200, json.dumps(answer).encode()) == {"SOURCE_UNAVAILABLE", "NO CODE"}
    assert codes_of(200, b'{"data": {"me": {"id": "1"}}}') == frozenset()
    assert codes_of(502, b"Bad Gateway") == {"HTTP 502"}
    assert codes_of(503, b'{"detail": "down"}') == {"HTTP 503"}
    assert codes_of(500, b'{"data": null}') == {"HTTP 500"}


@pytest.mark.parametrize(
    ("clients", "share", "dashboards"), [(16, 0.5, 8), (16, 0.0, 1), (16, 1.0, 15), (3, 0.5, 2)]
)
def test_clients_are_split_with_at_least_one_of_each_query(
    clients: int, share: float, dashboards: int
) -> None:
    kinds = client_kinds(clients, share)
    assert len(kinds) == clients
    assert kinds.count("dashboard") == dashboards
    assert kinds.count("me") == clients - dashboards


def test_a_random_mix_is_seeded_per_client_and_keeps_its_share() -> None:
    first, described = choosers("random", 4, 0.25)
    again, _ = choosers("random", 4, 0.25)
    drawn = [[choose() for _ in range(400)] for choose in first]
    assert drawn == [[choose() for _ in range(400)] for choose in again]
    assert drawn[0] != drawn[1]
    share = sum(kinds.count("dashboard") for kinds in drawn) / 1600
    assert 0.2 < share < 0.3
    assert described == "4, each drawing dashboard 25% / me per request"
    split, described = choosers("split", 4, 0.25)
    assert [choose() for choose in split] == ["dashboard", "me", "me", "me"]
    assert described == "1 dashboard, 3 me"
