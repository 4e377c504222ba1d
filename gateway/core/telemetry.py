"""Telemetry: the gateway's Prometheus metrics, its optional OpenTelemetry tracing, and the
request in progress (its id and trace) that log lines and spans are tied to.

Metrics live in prometheus-client's process registry, made once at import as Prometheus
metrics are; when PROMETHEUS_MULTIPROC_DIR is set (several workers), every process writes
its values to files there and `metrics_registry` sums them. Sources report through one
object each (`SourceMeter`, made by `SourceBase`), whose labelled children are made once,
so a call costs a few microseconds, not a label lookup per metric.

    gateway_requests_total{operation,outcome}       outcome: ok, partial, error, invalid
    gateway_request_duration_seconds{operation}     histogram
    gateway_requests_in_flight
    gateway_source_calls_total{source,outcome}      outcome: see `SOURCE_OUTCOMES`
    gateway_source_call_duration_seconds{source}    histogram
    gateway_source_calls_in_flight{source}
    gateway_source_breaker_state{source}            0 closed, 1 half-open, 2 open
    gateway_source_concurrency_limit{source}        the bulkhead's size (per process)
    gateway_dataloader_batch_size{source,loader}    histogram of keys per batch

Tracing is off until `enable_tracing`: the OpenTelemetry SDK is an optional dependency
(the `otel` extra), imported only then. A traced request has one span, and each source call
made for it one child span; never one per resolved field.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context as TraceContext
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "CONTENT_TYPE_LATEST",
    "SOURCE_OUTCOMES",
    "RequestInfo",
    "RequestSpan",
    "SourceMeter",
    "accepted_request_id",
    "batch_sizes",
    "current_request",
    "disable_tracing",
    "enable_tracing",
    "metrics_registry",
    "multiprocess_dir",
    "process_exiting",
    "record_request",
    "render_metrics",
    "request_scope",
    "response_extensions",
    "start_request_span",
    "trace_id_of",
    "tracing_enabled",
]

# --- metrics ---------------------------------------------------------------------------

# Requests take milliseconds to the request deadline (10 s by default).
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A round trip on a local network takes about a millisecond; deadlines are seconds.
_SOURCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 1000)

REQUESTS = Counter(
    "gateway_requests",
    "GraphQL requests answered, by operation name and outcome (ok: no error; partial: data "
    "and errors; error: errors and no data; invalid: refused before execution).",
    ["operation", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Time from receiving a GraphQL request to its answer, by operation name.",
    ["operation"],
    buckets=_REQUEST_BUCKETS,
)
REQUESTS_IN_FLIGHT = Gauge(
    "gateway_requests_in_flight",
    "GraphQL requests being answered now.",
    multiprocess_mode="livesum",
)
SOURCE_CALLS = Counter(
    "gateway_source_calls",
    "Calls through a source's boundary (each a round trip or a few), by outcome: ok, "
    "conflict (a unique key taken: an answer), timeout (a deadline passed), rejected (the "
    "breaker was open: nothing asked), error (the source failed), cancelled (the caller "
    "went away).",
    ["source", "outcome"],
)
SOURCE_SECONDS = Histogram(
    "gateway_source_call_duration_seconds",
    "Time a caller waited for one source call, queueing for the bulkhead included.",
    ["source"],
    buckets=_SOURCE_BUCKETS,
)
SOURCE_IN_FLIGHT = Gauge(
    "gateway_source_calls_in_flight",
    "Source calls being waited for now.",
    ["source"],
    multiprocess_mode="livesum",
)
BREAKER_STATE = Gauge(
    "gateway_source_breaker_state",
    "A source's circuit breaker: 0 closed, 1 half-open, 2 open (per process; with several "
    "workers, the worst of the live ones).",
    ["source"],
    multiprocess_mode="livemax",
)
SOURCE_CONCURRENCY = Gauge(
    "gateway_source_concurrency_limit",
    "At most this many calls run against a source at once, per process (the bulkhead).",
    ["source"],
    multiprocess_mode="livemax",
)
BATCH_SIZE = Histogram(
    "gateway_dataloader_batch_size",
    "Keys a DataLoader sent to its source in one batch.",
    ["source", "loader"],
    buckets=_BATCH_BUCKETS,
)

RATE_LIMITED = Counter(
    "gateway_rate_limited",
    "Calls refused with RATE_LIMITED, by the limit that refused them: ip (whole requests "
    "per client IP, HTTP 429), query, mutation, auth or sensitive (a root field's bucket), "
    "signin (failed sign-ins locked the account or address).",
    ["limit"],
)

SOURCE_OUTCOMES = ("ok", "conflict", "timeout", "rejected", "error", "cancelled")
_BREAKER_VALUES = {"closed": 0, "half-open": 1, "open": 2}
# Operation names come from clients: past this many distinct ones (per process) the rest are
# counted as "other", so a client cannot grow the metrics without bound.
MAX_OPERATION_LABELS = 200
_MAX_OPERATION_NAME = 100
_operation_labels: set[str] = set()


def multiprocess_dir() -> str | None:
    """The directory several processes share their metrics through, if set."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def metrics_registry() -> CollectorRegistry:
    """What `/metrics` renders: this process's registry, or with PROMETHEUS_MULTIPROC_DIR set,
    one summing every process's files there (so any worker answers for all of them)."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus's text format (`CONTENT_TYPE_LATEST`)."""
    return generate_latest(registry)


def prepare_multiprocess_dir(path: str) -> None:
    """Empty a metrics directory of a previous run's files, before any worker starts: the
    counters of processes long gone would be summed in otherwise. This process's own files
    stay (it may serve as the only worker, its values already mapped)."""
    mine = f"_{os.getpid()}.db"
    for stale in Path(path).glob("*.db"):
        if not stale.name.endswith(mine):
            stale.unlink(missing_ok=True)


def process_exiting() -> None:
    """This process stops serving: its live gauges (in flight, breaker state) stop counting."""
    if (path := multiprocess_dir()) is not None:
        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


def _operation_label(name: str | None) -> str:
    if name is None:
        return "anonymous"
    if name in _operation_labels:
        return name
    if len(name) > _MAX_OPERATION_NAME or len(_operation_labels) >= MAX_OPERATION_LABELS:
        return "other"
    _operation_labels.add(name)
    return name


def record_request(info: RequestInfo, seconds: float) -> None:
    """Count one GraphQL request under its operation and outcome."""
    operation = info.operation_label
    REQUESTS.labels(operation, info.outcome or "error").inc()
    REQUEST_SECONDS.labels(operation).observe(seconds)


def batch_sizes(source: str, loader: str) -> Histogram:
    """The batch-size histogram of one loader (a labelled child: made once, then reused)."""
    return BATCH_SIZE.labels(source, loader)


# --- tracing -----------------------------------------------------------------------------


class _Tracing:
    """The tracer and the few OpenTelemetry names the hot paths need, imported once."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, trace  # noqa: PLC0415 - optional dependency
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("gateway")
        self.trace = trace
        self.context = context
        self.propagator = TraceContextTextMapPropagator()


_TRACING: _Tracing | None = None


def enable_tracing(provider: TracerProvider | None = None) -> None:
    """Trace requests and source calls with `provider`, or with one configured by the
    standard OTEL_ variables (see `_provider_from_environment`) made the global one."""
    global _TRACING  # noqa: PLW0603 - process-wide, like OpenTelemetry's own provider
    if provider is None:
        if _TRACING is not None:
            return
        try:
            provider = _provider_from_environment()
        except ImportError as exc:
            raise RuntimeError(
                "TRACING_ENABLED needs the OpenTelemetry SDK: pip install 'trading-gateway[otel]'"
            ) from exc
    _TRACING = _Tracing(provider)


def disable_tracing() -> None:
    """Stop tracing (spans already started still end)."""
    global _TRACING  # noqa: PLW0603 - see enable_tracing
    _TRACING = None


def tracing_enabled() -> bool:
    """Whether requests and source calls are traced."""
    return _TRACING is not None


def _provider_from_environment() -> TracerProvider:
    """An SDK provider as the standard variables say: OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES name the resource, OTEL_TRACES_SAMPLER(_ARG) sample,
    OTEL_TRACES_EXPORTER picks `otlp` (the default: OTLP over HTTP, configured by
    OTEL_EXPORTER_OTLP_*), `console` or `none`, and OTEL_BSP_* tune the batching."""
    from opentelemetry import trace  # noqa: PLC0415 - optional dependency
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    resource = Resource.create({"service.name": "trading-gateway"})
    provider = TracerProvider(resource=resource)
    exporters: list[SpanExporter] = []
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        match name.strip().lower():
            case "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                    OTLPSpanExporter,
                )

                exporters.append(OTLPSpanExporter())
            case "console":
                exporters.append(ConsoleSpanExporter())
            case "none" | "":
                pass
            case other:
                raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {other!r}")
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def trace_id_of(span: Span) -> str | None:
    """The 32-hex-digit trace id of a span (None if it has none)."""
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class RequestSpan:
    """The span of one request, current in its context until `end`."""

    def __init__(self, tracing: _Tracing, span: Span, token: object) -> None:
        self._tracing = tracing
        self.span = span
        self._token = token

    def end(self, info: RequestInfo, status: int) -> None:
        """End the span, named and described by what the request turned out to be."""
        span = self.span
        if info.operation_type is not None:
            span.update_name(f"{info.operation_type} {info.operation_label}")
            span.set_attribute("graphql.operation.type", info.operation_type)
        if info.operation is not None:
            span.set_attribute("graphql.operation.name", info.operation)
        if info.outcome is not None:
            span.set_attribute("gateway.outcome", info.outcome)
        span.set_attribute("http.response.status_code", status)
        if status >= 500 or info.outcome == "error":
            span.set_status(self._tracing.trace.StatusCode.ERROR)
        self._tracing.context.detach(self._token)
        span.end()


def start_request_span(headers: Mapping[str, str], *, method: str, path: str) -> RequestSpan | None:
    """A server span for one request, the child of an incoming W3C `traceparent` if any,
    made current; None when tracing is off."""
    tracing = _TRACING
    if tracing is None:
        return None
    parent: TraceContext = tracing.propagator.extract(headers)
    span = tracing.tracer.start_span(
        f"{method} {path}",
        context=parent,
        kind=tracing.trace.SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    )
    token = tracing.context.attach(tracing.trace.set_span_in_context(span, parent))
    return RequestSpan(tracing, span, token)


# --- sources -----------------------------------------------------------------------------


class SourceMeter:
    """What one source reports per call: its labelled metric children (made once) and,
    when tracing is on, a span per call within a traced request."""

    __slots__ = (
        "_breaker",
        "_breaker_state",
        "_calls",
        "_in_flight",
        "_seconds",
        "db_system",
        "source",
    )

    def __init__(self, source: str, *, db_system: str, concurrency: int) -> None:
        self.source = source
        self.db_system = db_system
        self._calls = {outcome: SOURCE_CALLS.labels(source, outcome) for outcome in SOURCE_OUTCOMES}
        self._seconds = SOURCE_SECONDS.labels(source)
        self._in_flight = SOURCE_IN_FLIGHT.labels(source)
        self._breaker = BREAKER_STATE.labels(source)
        self._breaker_state = "closed"
        self._breaker.set(0)
        SOURCE_CONCURRENCY.labels(source).set(concurrency)

    def started(self) -> Span | None:
        """A call begins: its span if this request is traced."""
        self._in_flight.inc()
        tracing = _TRACING
        if tracing is None or not tracing.trace.get_current_span().is_recording():
            return None  # outside a traced request (readiness, the deletion sweep): no span
        return tracing.tracer.start_span(
            f"source {self.source}",
            kind=tracing.trace.SpanKind.CLIENT,
            attributes={"gateway.source": self.source, "db.system": self.db_system},
        )

    def ended(self, outcome: str, seconds: float, span: Span | None, breaker: str) -> None:
        """A call ended with `outcome` after `seconds`; its source's breaker is `breaker`."""
        self._in_flight.dec()
        self._calls[outcome].inc()
        self._seconds.observe(seconds)
        if breaker != self._breaker_state:
            self.breaker(breaker)
        if span is not None:
            span.set_attribute("gateway.source.outcome", outcome)
            if outcome not in ("ok", "conflict") and _TRACING is not None:
                span.set_status(_TRACING.trace.StatusCode.ERROR, outcome)
            span.end()

    def breaker(self, state: str) -> None:
        """Report the source's breaker state (`closed`, `half-open` or `open`)."""
        self._breaker_state = state
        self._breaker.set(_BREAKER_VALUES.get(state, 2))


# --- the request in progress -------------------------------------------------------------


@dataclass(slots=True)
class RequestInfo:
    """One HTTP request as telemetry sees it: its id, its trace, and (for GraphQL) the
    operation that ran and how it ended, told by the schema as it finishes."""

    request_id: str
    trace_id: str | None = None
    operation: str | None = None
    operation_type: str | None = None
    outcome: str | None = None
    # Whether the query text may be kept for the log line (LOG_QUERY_TEXT, development only);
    # variables are never kept.
    keep_query: bool = False
    query: str | None = None

    @property
    def operation_label(self) -> str:
        """The operation's name as a metric label (bounded: see MAX_OPERATION_LABELS)."""
        if self.operation_type is None:
            return "unknown"  # refused before the document was read
        # A name takes one of the few label slots only once an operation under it has run:
        # a stream of refused documents with made-up names cannot fill them.
        unknown = self.operation is not None and self.operation not in _operation_labels
        if unknown and self.outcome not in ("ok", "partial"):
            return "other"
        return _operation_label(self.operation)


_REQUEST: ContextVar[RequestInfo | None] = ContextVar("gateway_request", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, like a trace id."""
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str | None:
    """An incoming X-Request-Id if it is well formed (1 to 128 characters of letters,
    digits and `._:/+=-`), so a client cannot write into the logs what it likes."""
    if value is None or not _REQUEST_ID.match(value):
        return None
    return value


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def traceparent_trace_id(value: str | None) -> str | None:
    """The trace id of a well-formed W3C `traceparent` header, else None."""
    if value is None or not (match := _TRACEPARENT.match(value.strip())):
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"}:
        return None
    if set(span_id) == {"0"}:
        return None
    return trace_id


@contextmanager
def request_scope(info: RequestInfo) -> Iterator[RequestInfo]:
    """Make `info` the request in progress (for this task and the tasks it starts)."""
    token = _REQUEST.set(info)
    try:
        yield info
    finally:
        _REQUEST.reset(token)


def current_request() -> RequestInfo | None:
    """The request in progress, if any."""
    return _REQUEST.get()


def response_extensions(extensions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A GraphQL response's `extensions`: those given, plus the request id when a request is
    in progress."""
    merged = dict(extensions or {})
    if (info := _REQUEST.get()) is not None:
        merged["requestId"] = info.request_id
    return merged


def header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict of lower-case names (the last of repeated ones wins)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
