"""Telemetry without a database: a source nobody taught about metrics is measured by the
boundary alone, loaders are built so their batches are measured, and request ids, trace
parents and log lines are what they should be."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from datasources import Deadlines, SourceBase, SourceLimits
from gateway.core import logs, telemetry
from gateway.core.errors import NotFound, SourceUnavailable
from gateway.core.settings import Settings
from tests.helpers import ROOT


class LateSource(SourceBase):
    """A source added after the telemetry was written: nothing in it reports anything."""

    name = "late-fake"
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = (KeyError,)

    async def answer(self) -> str:
        return "answered"

    async def fail(self, error: BaseException) -> None:
        raise error

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def calls(outcome: str, source: str = "late-fake") -> float:
    value = REGISTRY.get_sample_value(
        "gateway_source_calls_total", {"source": source, "outcome": outcome}
    )
    return value or 0.0


def breaker_state(source: str = "late-fake") -> float | None:
    return REGISTRY.get_sample_value("gateway_source_breaker_state", {"source": source})


async def test_every_call_of_any_source_is_counted_by_outcome_and_timed() -> None:
    source = LateSource(limits=SourceLimits(deadlines=Deadlines.every(0.05), breaker_failures=2))
    before = {outcome: calls(outcome) for outcome in telemetry.SOURCE_OUTCOMES}
    timed = REGISTRY.get_sample_value(
        "gateway_source_call_duration_seconds_count", {"source": "late-fake"}
    )

    assert await source.answer() == "answered"
    with pytest.raises(NotFound):  # a coded answer: the source answered
        await source.fail(NotFound("no such thing"))
    with pytest.raises(Exception, match="already taken"):
        await source.fail(KeyError("duplicate"))
    with pytest.raises(SourceUnavailable):
        await source.fail(OSError("connection refused"))
    assert breaker_state() == 0
    with pytest.raises(SourceUnavailable):
        await source.wait(1)  # the deadline passes: the second failure opens the breaker
    assert breaker_state() == 2
    with pytest.raises(SourceUnavailable):
        await source.answer()  # refused at once, nothing asked

    counted = {outcome: calls(outcome) - before[outcome] for outcome in before}
    assert counted == {
        "ok": 2,
        "conflict": 1,
        "timeout": 1,
        "rejected": 1,
        "error": 1,
        "cancelled": 0,
    }
    after = REGISTRY.get_sample_value(
        "gateway_source_call_duration_seconds_count", {"source": "late-fake"}
    )
    assert (after or 0) - (timed or 0) == 6


def test_no_source_builds_a_loader_that_is_not_measured() -> None:
    """Loaders come from `SourceBase.loader`, which measures their batch sizes: a source
    module constructing aiodataloader's DataLoader itself would bypass it."""
    found = []
    for path in sorted((ROOT / "datasources").glob("*.py")):
        if path.name == "_batch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "DataLoader"
            ):
                found.append(f"{path.name}:{node.lineno}")
    assert found == [], f"use source.loader(...) instead of DataLoader(...): {found}"


@pytest.mark.parametrize(
    ("incoming", "accepted"),
    [
        ("3f1c-req.42", "3f1c-req.42"),
        ("a" * 128, "a" * 128),
        ("a" * 129, None),
        ("", None),
        ("has space", None),
        ('quote"d', None),
        ("line\nbreak", None),
        ("-leading-dash", None),
    ],
)
def test_only_a_well_formed_request_id_is_taken_from_a_client(
    incoming: str, accepted: str | None
) -> None:
    assert telemetry.accepted_request_id(incoming) == accepted


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"01-{TRACE}-00f067aa0ba902b7-01-future", TRACE),
        (f"00-{TRACE}-00f067aa0ba902b7-01-extra", None),
        (f"ff-{TRACE}-00f067aa0ba902b7-01", None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", None),
        ("garbage", None),
    ],
)
def test_a_traceparent_is_read_as_w3c_trace_context_says(header: str, trace_id: str | None) -> None:
    assert telemetry.traceparent_trace_id(header) == trace_id


def test_a_json_log_line_carries_the_request_it_was_written_for() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.telemetry")
    logger.addHandler(logs.handler("json", stream))
    logger.setLevel(logging.INFO)
    try:
        info = telemetry.RequestInfo(request_id="req-1", trace_id=TRACE)
        with telemetry.request_scope(info):
            logger.info("inside %s", "a request", extra={"fields": {"status": 200}})
        logger.warning("outside")
    finally:
        logger.handlers.clear()

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "inside a request"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "tests.telemetry"
    assert inside["request_id"] == "req-1"
    assert inside["trace_id"] == TRACE
    assert inside["status"] == 200
    assert inside["time"].endswith("Z")
    assert "request_id" not in outside


def test_query_text_may_be_logged_in_development_only() -> None:
    Settings(_env_file=None, gateway_env="development", log_query_text=True)
    for env in ("test", "production"):
        with pytest.raises(ValidationError, match="LOG_QUERY_TEXT"):
            Settings(_env_file=None, gateway_env=env, log_query_text=True)


def test_operation_names_cannot_grow_the_metrics_without_bound(monkeypatch) -> None:
    monkeypatch.setattr(telemetry, "_operation_labels", set())
    monkeypatch.setattr(telemetry, "MAX_OPERATION_LABELS", 2)
    labels = [
        telemetry.RequestInfo(
            request_id="r", operation=name, operation_type="query", outcome=outcome
        ).operation_label
        for name, outcome in [
            ("Junk", "invalid"),  # refused: takes no slot
            ("A", "ok"),
            ("B", "partial"),
            ("C", "ok"),
            ("A", "invalid"),  # known already
            (None, "ok"),
            ("x" * 101, "ok"),
            ("Junk", "ok"),
        ]
    ]
    assert labels == ["other", "A", "B", "other", "A", "anonymous", "other", "other"]
