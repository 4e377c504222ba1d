"""Each HTTP request's telemetry: its id, its span, its metrics and its log line.

`RequestTelemetry` wraps the whole app (an ASGI middleware), so no route can forget it:

- a request id per request: a well-formed incoming `X-Request-Id`, else the trace id of an
  incoming W3C `traceparent` (or of the request's own span when tracing), else a fresh one;
  returned in the `X-Request-Id` response header (and by `/graphql` in `extensions`);
- with tracing on, one server span per `/graphql` request, the child of an incoming
  `traceparent`, named by the operation (`query Dashboard`);
- for `/graphql`, `gateway_requests_total{operation,outcome}` and the latency histogram;
- one access log line per request (`gateway.access`): method, path without its query
  string (a GET carries the query and variables there), status, duration, and for GraphQL
  the operation and outcome. The query text only with LOG_QUERY_TEXT (development);
  variables never.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core import telemetry

log = logging.getLogger("gateway.access")

GRAPHQL_PATH = "/graphql"
# Probes and scrapes, every few seconds: not worth a line each.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestTelemetry:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, *, log_query_text: bool = False) -> None:
        self.app = app
        self.log_query_text = log_query_text

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = telemetry.header_map(scope["headers"])
        path: str = scope["path"]
        method: str = scope["method"]
        graphql = path == GRAPHQL_PATH
        span = telemetry.start_request_span(headers, method=method, path=path) if graphql else None
        trace_id = (
            telemetry.trace_id_of(span.span)
            if span is not None
            else telemetry.traceparent_trace_id(headers.get("traceparent"))
        )
        request_id = (
            telemetry.accepted_request_id(headers.get("x-request-id"))
            or trace_id
            or telemetry.new_request_id()
        )
        info = telemetry.RequestInfo(
            request_id=request_id, trace_id=trace_id, keep_query=self.log_query_text
        )
        status = 500
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        with telemetry.request_scope(info):
            if graphql:
                telemetry.REQUESTS_IN_FLIGHT.inc()
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                if graphql:
                    telemetry.REQUESTS_IN_FLIGHT.dec()
                    _settle_outcome(info, status)
                    if info.outcome is not None:
                        telemetry.record_request(info, seconds)
                if span is not None:
                    span.end(info, status)
                if path not in _QUIET_PATHS:
                    _log_access(info, method, path, status, seconds, graphql=graphql)


def _settle_outcome(info: telemetry.RequestInfo, status: int) -> None:
    """The outcome of a request the schema did not report (it never reached the schema):
    refused (4xx) or failed (5xx). A 2xx or 3xx left unreported was no GraphQL request
    (GraphiQL's page) and is not counted."""
    if info.outcome is None and status >= 400:
        info.outcome = "error" if status >= 500 else "invalid"


def _log_access(
    info: telemetry.RequestInfo,
    method: str,
    path: str,
    status: int,
    seconds: float,
    *,
    graphql: bool,
) -> None:
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    if graphql and info.outcome is not None:
        fields["operation"] = info.operation_label
        if info.operation_type is not None:
            fields["operation_type"] = info.operation_type
        fields["outcome"] = info.outcome
        if info.query is not None:  # kept only with LOG_QUERY_TEXT, in development
            fields["query"] = info.query
    log.info("%s %s %s", method, path, status, extra={"fields": fields})
