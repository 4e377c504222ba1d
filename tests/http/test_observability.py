"""What an operator sees of the gateway: `/metrics`, traces and log lines, from real requests
against the real databases (faults injected on the wire, tests/faults.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.core import logs, telemetry
from gateway.core.settings import Settings
from tests.faults import FaultProxy
from tests.helpers import (
    PASSWORD,
    body_of,
    every_source_timeout,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

SOURCES = {"users", "strategies", "credentials", "trades", "analytics"}
DASHBOARD = """
query Dashboard {
  dashboard {
    user { id }
    strategyCounts { total }
    recentTrades { id strategy { name } }
    pnl { allTime }
    credentialsConfigured
    recentActivity { kind }
  }
}
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def post(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


async def dashboard_user(sources, settings: Settings) -> str:
    """A user whose dashboard reads all five sources; a token for it."""
    user = await make_user(sources)
    strategy = await make_strategy(sources, user, status="ACTIVE")
    await make_trades(sources, [trade_row(strategy) for _ in range(3)])
    await make_credentials(sources, user)
    return token_for(settings, user)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line of the process, as `gateway serve --log-format json` writes them,
    the gateway's own loggers down to DEBUG."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    gateway = logging.getLogger("gateway")
    levels = (root.level, gateway.level)
    # The test's own HTTP client logs the URLs it requests: not the gateway's doing.
    client_log = logging.getLogger("httpx")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    gateway.setLevel(logging.DEBUG)
    client_log.setLevel(logging.WARNING)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        gateway.setLevel(levels[1])
        client_log.setLevel(logging.NOTSET)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every finished span kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable_tracing(provider)
    try:
        yield exporter
    finally:
        telemetry.disable_tracing()
        provider.shutdown()


# --- /metrics -----------------------------------------------------------------------------


async def test_metrics_count_requests_by_operation_and_outcome(client, sources, settings):
    user = await make_user(sources)
    token = token_for(settings, user)
    before = await scrape(client)

    assert (await post(client, "query Me { me { id } }", token=token)).status_code == 200
    assert (await post(client, "query Me { me { id } }", token=token)).status_code == 200
    await post(client, "query Me { me { id } }", token="not-a-token")  # me: null, an error
    await post(client, "query Broken { me { nope } }", token=token)  # fails validation
    await post(client, "{ me {", token=token)  # does not parse
    await client.post("/graphql", content=b"[]", headers={"content-type": "application/json"})

    after = await scrape(client)

    def counted(operation: str, outcome: str) -> float:
        labels = {"operation": operation, "outcome": outcome}
        name = "gateway_requests_total"
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert counted("Me", "ok") == 2
    assert counted("Me", "partial") == 1
    # A name first seen on a refused document takes no label of its own.
    assert counted("Broken", "invalid") == 0
    assert counted("other", "invalid") == 1
    assert counted("unknown", "invalid") == 2  # no document to name it
    timed = "gateway_request_duration_seconds_count"
    assert sample(after, timed, operation="Me") - sample(before, timed, operation="Me") == 3
    assert sample(after, "gateway_requests_in_flight") == 0


async def test_metrics_count_each_sources_calls_and_loader_batches(client, sources, settings):
    token = await dashboard_user(sources, settings)
    before = await scrape(client)

    response = await post(client, DASHBOARD, token=token)
    assert "errors" not in body_of(response), response.text
    after = await scrape(client)

    for source in SOURCES:
        calls = {"source": source, "outcome": "ok"}
        assert sample(after, "gateway_source_calls_total", **calls) > sample(
            before, "gateway_source_calls_total", **calls
        ), source
        assert sample(after, "gateway_source_breaker_state", source=source) == 0
        assert (
            sample(after, "gateway_source_concurrency_limit", source=source)
            == settings.source_concurrency
        )
        assert sample(after, "gateway_source_calls_in_flight", source=source) == 0
    # The recent trades' strategies: one batch of the three trades' one strategy id.
    batches = {"source": "strategies", "loader": "by_id"}
    name = "gateway_dataloader_batch_size_count"
    assert sample(after, name, **batches) - sample(before, name, **batches) == 1
    name = "gateway_dataloader_batch_size_sum"
    assert sample(after, name, **batches) - sample(before, name, **batches) == 1


@pytest.fixture
async def stalling_trades(settings: Settings) -> AsyncIterator[tuple[FastAPI, FaultProxy]]:
    """An app whose trades database is behind a fault proxy; short deadlines, a breaker
    that opens after two failures and stays open."""
    async with FaultProxy.in_front_of(settings.trades_database_url) as proxy:
        app = create_app(
            settings.model_copy(
                update={
                    "trades_database_url": proxy.url_through(settings.trades_database_url),
                    **every_source_timeout(0.3),
                    "source_breaker_failures": 2,
                    "source_breaker_cooldown_seconds": 60.0,
                    "shutdown_close_seconds": 1.0,
                }
            )
        )
        async with app.router.lifespan_context(app):
            yield app, proxy
            await proxy.set("pass")


async def test_metrics_show_deadline_hits_and_an_open_breaker(stalling_trades, sources, settings):
    app, proxy = stalling_trades
    token = token_for(settings, await make_user(sources))
    query = "{ dashboard { recentTrades { id } } }"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        assert "errors" not in body_of(await post(http, query, token=token))
        before = await scrape(http)
        await proxy.set("stall")
        for _ in range(3):  # two deadlines pass and open the breaker; the third is refused
            body = body_of(await post(http, query, token=token))
            assert body["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
        after = await scrape(http)

    def counted(outcome: str) -> float:
        labels = {"source": "trades", "outcome": outcome}
        name = "gateway_source_calls_total"
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert counted("timeout") == 2
    assert counted("rejected") == 1
    assert sample(after, "gateway_source_breaker_state", source="trades") == 2  # open
    assert sample(after, "gateway_source_breaker_state", source="users") == 0
    assert sample(after, "gateway_requests_total", operation="anonymous", outcome="partial") >= 3


async def test_metrics_can_be_left_off_the_api_port(settings):
    for update in ({"metrics_enabled": False}, {"metrics_port": 9464}):
        app = create_app(settings.model_copy(update=update))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
            ) as http,
        ):
            assert (await http.get("/metrics")).status_code == 404


# --- request ids ----------------------------------------------------------------------------


async def test_every_response_carries_its_request_id_in_a_header_and_in_extensions(client):
    first = await post(client, "{ __typename }")
    second = await post(client, "{ __typename }")
    refused = await client.post("/graphql", content=b"{", headers={"content-type": "text/plain"})

    ids = [response.headers["x-request-id"] for response in (first, second, refused)]
    assert len(set(ids)) == 3
    assert first.json()["extensions"]["requestId"] == ids[0]  # beside the query's cost
    assert refused.status_code == 415
    assert refused.json()["extensions"] == {"requestId": ids[2]}
    # Every route has one, not only /graphql.
    assert (await client.get("/healthz")).headers["x-request-id"]


async def test_a_well_formed_incoming_request_id_is_kept_and_another_is_replaced(client):
    kept = await post(client, "{ __typename }", headers={"X-Request-Id": "edge-7f3a.42"})
    replaced = await post(client, "{ __typename }", headers={"X-Request-Id": "evil\tid"})

    assert kept.headers["x-request-id"] == "edge-7f3a.42"
    assert kept.json()["extensions"]["requestId"] == "edge-7f3a.42"
    assert replaced.headers["x-request-id"] not in ("evil\tid", "")


async def test_a_log_line_per_request_carries_its_request_id(client, sources, settings, log_lines):
    user = await make_user(sources)
    response = await post(client, "query Me { me { id } }", token=token_for(settings, user))

    request_id = response.headers["x-request-id"]
    (line,) = [entry for entry in parsed(log_lines) if entry.get("request_id") == request_id]
    assert line["logger"] == "gateway.access"
    assert line["level"] == "INFO"
    assert line["message"] == "POST /graphql 200"
    assert (line["operation"], line["operation_type"], line["outcome"]) == ("Me", "query", "ok")
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert "query" not in line


async def test_a_source_failure_is_logged_under_the_request_that_met_it(
    stalling_trades, sources, settings, log_lines
):
    app, proxy = stalling_trades
    token = token_for(settings, await make_user(sources))
    await proxy.set("refuse")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        response = await post(http, "{ dashboard { recentTrades { id } } }", token=token)

    request_id = response.headers["x-request-id"]
    failures = [
        entry
        for entry in parsed(log_lines)
        if entry["logger"] == "gateway.sources" and "trades" in entry["message"]
    ]
    assert failures
    assert {entry.get("request_id") for entry in failures} == {request_id}


async def test_neither_query_text_nor_variables_reach_the_logs(
    client, sources, settings, log_lines
):
    user = await make_user(sources, email="logs@example.com")
    secret_email = "never-logged@example.com"
    login = "mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }"  # noqa: E501
    inline = f'mutation {{ login(email: "{secret_email}", password: "inline-{PASSWORD}") {{ accessToken }} }}'  # noqa: E501
    signed_in = await post(client, login, {"email": user.email, "password": PASSWORD})
    wrong = await post(client, login, {"email": user.email, "password": "wrong-" + PASSWORD})
    inlined = await post(client, inline)
    broken = await post(client, login + " }", {"email": user.email, "password": PASSWORD})
    await client.get("/graphql", params={"query": inline})  # a mutation over GET: 405

    assert "errors" not in body_of(signed_in)
    assert body_of(wrong)["errors"]
    assert body_of(inlined)["errors"]
    assert body_of(broken)["errors"]
    written = log_lines.getvalue()
    assert written.count('"logger": "gateway.access"') >= 5
    for secret in (PASSWORD, secret_email, "mutation Login", "login(email"):
        assert secret not in written, secret


async def test_query_text_is_logged_when_development_asks_but_variables_never(settings, log_lines):
    app = create_app(
        settings.model_copy(update={"gateway_env": "development", "log_query_text": True})
    )
    query = "query Login($email: String!, $password: String!) { __typename }"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g.test") as http,
    ):
        response = await post(http, query, {"email": "a@example.com", "password": PASSWORD})

    request_id = response.headers["x-request-id"]
    (line,) = [entry for entry in parsed(log_lines) if entry.get("request_id") == request_id]
    assert line["query"] == query
    assert PASSWORD not in log_lines.getvalue()


# --- tracing --------------------------------------------------------------------------------


def _by_start(found: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(found, key=lambda span: span.start_time or 0)


async def test_a_dashboard_is_one_request_span_over_concurrent_spans_of_all_five_sources(
    client, sources, settings, spans
):
    token = await dashboard_user(sources, settings)
    response = await post(client, DASHBOARD, token=token)
    assert "errors" not in body_of(response)

    finished = spans.get_finished_spans()
    (request,) = [span for span in finished if span.kind is SpanKind.SERVER]
    calls = [span for span in finished if span.kind is SpanKind.CLIENT]
    assert request.name == "query Dashboard"
    assert request.attributes is not None
    assert request.attributes["graphql.operation.name"] == "Dashboard"
    assert request.parent is None
    # One span per source call, none per field: the dashboard resolves dozens of fields.
    assert len(finished) == 1 + len(calls)
    assert len(calls) <= 12
    by_source: dict[str, list[ReadableSpan]] = {}
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id == request.context.span_id
        assert call.context.trace_id == request.context.trace_id
        assert call.attributes is not None
        assert call.attributes["gateway.source.outcome"] == "ok"
        by_source.setdefault(str(call.attributes["gateway.source"]), []).append(call)
    assert set(by_source) == SOURCES
    systems = {name: group[0].attributes["db.system"] for name, group in by_source.items()}  # type: ignore[index]
    assert systems["users"] == "mongodb"
    assert systems["trades"] in ("postgresql", "sqlite")
    # The first call of each source is in flight at one moment: they ran concurrently.
    first = [_by_start(group)[0] for group in by_source.values()]
    assert max(span.start_time or 0 for span in first) < min(span.end_time or 0 for span in first)
    assert response.headers["x-request-id"] == format(request.context.trace_id, "032x")


async def test_an_incoming_traceparent_is_continued_in_spans_and_logs(
    client, sources, settings, spans, log_lines
):
    user = await make_user(sources)
    response = await post(
        client,
        "query Me { me { id } }",
        token=token_for(settings, user),
        headers={"traceparent": TRACEPARENT},
    )

    finished = spans.get_finished_spans()
    (request,) = [span for span in finished if span.kind is SpanKind.SERVER]
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert request.parent is not None
    assert format(request.parent.span_id, "016x") == PARENT_SPAN
    assert all(format(span.context.trace_id, "032x") == TRACE_ID for span in finished)
    assert response.headers["x-request-id"] == TRACE_ID
    (line,) = [entry for entry in parsed(log_lines) if entry["logger"] == "gateway.access"]
    assert line["trace_id"] == TRACE_ID


async def test_without_tracing_an_incoming_traceparent_still_ties_the_logs_to_its_trace(
    client, log_lines
):
    response = await post(client, "{ __typename }", headers={"traceparent": TRACEPARENT})

    assert response.headers["x-request-id"] == TRACE_ID
    (line,) = [entry for entry in parsed(log_lines) if entry["logger"] == "gateway.access"]
    assert (line["request_id"], line["trace_id"]) == (TRACE_ID, TRACE_ID)
