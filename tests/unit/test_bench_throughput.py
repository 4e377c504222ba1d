"""bench.throughput's bookkeeping: what counts as a failed dashboard, and the figures of a
phase."""

from __future__ import annotations

import json

import pytest

from bench.throughput import Measured, error_codes


def test_a_whole_answer_has_no_error_codes() -> None:
    assert error_codes(json.dumps({"data": {"dashboard": {"errors": 0}}}).encode()) == []


def test_a_partial_answer_names_each_code_once_with_its_source() -> None:
    body = {
        "data": {"dashboard": None},
        "errors": [
            {"message": "a", "extensions": {"code": "SOURCE_UNAVAILABLE", "source": "trades"}},
            {"message": "b", "extensions": {"code": "SOURCE_UNAVAILABLE", "source": "trades"}},
            {"message": "c", "extensions": {"code": "GATEWAY_TIMEOUT"}},
        ],
    }

    assert error_codes(json.dumps(body).encode()) == [
        "GATEWAY_TIMEOUT",
        "SOURCE_UNAVAILABLE (trades)",
    ]


def test_a_phase_rates_whole_dashboards_only_and_charges_every_process() -> None:
    measured = Measured("gateway-w2", seconds=2.0, latencies=[10.0, 20.0, 30.0, 40.0])
    measured.failures["SOURCE_UNAVAILABLE (users)"] = 6  # an open breaker answers at once
    measured.cpu = {100: 0.01, 101: 0.05, 102: 0.06}

    row = measured.row()

    assert measured.requests == 10
    assert row["requests"] == 4
    assert row["per_second"] == pytest.approx(2.0)
    assert row["p50"] == pytest.approx(25.0)
    assert row["cpu_ms"] == pytest.approx(30.0)
    assert row["per_cpu_second"] == pytest.approx(4 / 0.12)
