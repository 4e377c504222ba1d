"""The FastAPI application: `/graphql`, `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from datasources import Sources, deadline
from gateway.core import telemetry
from gateway.core.auth import TokenService
from gateway.core.ratelimit import Limiter
from gateway.core.settings import Settings
from gateway.cors import Cors
from gateway.graphiql import ASSETS_PATH, CACHE_FOREVER, assets, served_assets
from gateway.http import GraphQLEndpoint
from gateway.observability import RequestTelemetry
from gateway.ratelimits import RateLimits
from gateway.security import HEADERS, SecurityHeaders
from resolvers.activity import relay_forever
from resolvers.deletion import sweep_forever
from schema import Limits, build_schema

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None, *, drain_on_signals: bool = False) -> FastAPI:
    """Build the app; its lifespan opens every source client once and closes them on shutdown.

    With `drain_on_signals` (a served process), SIGTERM and SIGINT also start the drain:
    requests still running when the shutdown grace is about to run out are stopped and
    answered SHUTTING_DOWN, before the server would drop them unanswered.
    """
    settings = settings or Settings()
    schema = build_schema(
        limits=limits_of(settings),
        introspection=settings.introspection_policy,
        suggestions=settings.suggestions_enabled,
        federation=settings.federation,
    )
    if settings.tracing_enabled:
        telemetry.enable_tracing()
    if settings.graphiql_enabled:
        assets()  # checked against their manifest now: a damaged file stops the start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sources = Sources.open(settings)
        app.state.sources = sources
        app.state.limiter = Limiter(settings)  # rate limits (gateway/ratelimits.py)
        app.state.graphql = GraphQLEndpoint(
            schema=schema, sources=sources, tokens=TokenService(settings), settings=settings
        )
        loops = _background_loops(sources, settings)
        restore: Callable[[], None] = _nothing
        if drain_on_signals:
            endpoint: GraphQLEndpoint = app.state.graphql
            grace = settings.shutdown_grace_seconds
            restore = _drain_on_signals(lambda: endpoint.in_flight.drain(_cut_after(grace)))
        log.info("gateway ready (%s)", settings.gateway_env)
        try:
            yield
        finally:
            restore()
            for task in loops:
                await _stopped(task)
            try:
                async with asyncio.timeout(settings.shutdown_close_seconds):
                    await asyncio.gather(
                        sources.close(), app.state.limiter.close(), app.state.graphql.close()
                    )
            except TimeoutError:
                # A database that does not answer must not keep the process alive.
                log.warning(
                    "closing the sources took over %.0f s; exiting without waiting",
                    settings.shutdown_close_seconds,
                )
            telemetry.process_exiting()

    app = FastAPI(
        title="Trading platform GraphQL gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.schema = schema
    # Inside the telemetry: a request refused for its rate still gets its id and log line.
    app.add_middleware(RateLimits)
    # Outermost but for Starlette's error handler: every request gets its id, span and line.
    app.add_middleware(RequestTelemetry, log_query_text=settings.log_query_text)
    # Outside the rate limits and the request log: a preflight spends no bucket and is no
    # GraphQL request; a 429 still carries the headers its page needs to read it.
    app.add_middleware(
        Cors,
        origins=settings.allowed_origins,
        allow_credentials=settings.cors_allow_credentials,
        max_age_seconds=settings.cors_max_age_seconds,
    )
    # Added last, so outermost: every response of every route carries the headers.
    app.add_middleware(SecurityHeaders)

    # Starlette answers an exception no route handled outside every middleware: the answer
    # is built here, coded and with the security headers, not as plain text.
    app.add_exception_handler(Exception, _unexpected)

    @app.api_route("/graphql", methods=["GET", "POST"], include_in_schema=False)
    async def graphql(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.graphql
        return await endpoint(request)

    if settings.graphiql_enabled:
        app.add_api_route(ASSETS_PATH + "/{name}", _graphiql_asset, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        return await _readiness(request, settings)

    if settings.metrics_enabled and settings.metrics_port is None:
        registry = telemetry.metrics_registry()

        @app.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            sources: Sources = request.app.state.sources
            # A breaker turns half-open with time alone, no call telling: read them now.
            for source in sources:
                source.telemetry.breaker(source.breaker.state)
            return Response(
                telemetry.render_metrics(registry), media_type=telemetry.CONTENT_TYPE_LATEST
            )

    return app


def limits_of(settings: Settings) -> Limits:
    """The per-request limits the settings name (README "Limits on every request")."""
    return Limits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_tokens=settings.max_query_tokens,
        max_document_chars=settings.max_document_chars,
        max_response_objects=settings.max_response_objects,
        max_response_bytes=settings.max_response_bytes,
        cache_max_document_chars=settings.cache_max_document_chars,
        cached_documents=settings.cached_documents,
        max_cost=settings.max_query_cost,
    )


async def _readiness(request: Request, settings: Settings) -> JSONResponse:
    """/readyz: every source pinged within its own short deadline, the rate limiter, and
    the persisted-query store."""
    sources: Sources = request.app.state.sources
    # Its own short deadline: a stalled source is reported down, not waited for.
    with deadline(settings.ready_timeout_seconds):
        statuses = await sources.ping()
    limiter: Limiter = request.app.state.limiter
    rate_limits = await limiter.status()  # Redis down is no unreadiness unless fail-closed
    endpoint: GraphQLEndpoint = request.app.state.graphql
    persisted_queries = await endpoint.persisted.queries.status()  # never unready: misses
    ready = all(status.ok for status in statuses) and limiter.ready
    return JSONResponse(
        {
            "status": "ready" if ready else "unavailable",
            "sources": {
                status.name: {
                    "ok": status.ok,
                    "latencyMs": status.latency_ms,
                    "breaker": status.breaker,
                    **({"error": status.error} if status.error else {}),
                }
                for status in statuses
            },
            "rateLimits": rate_limits,
            "persistedQueries": persisted_queries,
        },
        status_code=200 if ready else 503,
    )


async def _graphiql_asset(request: Request) -> Response:
    """GraphiQL's scripts and stylesheets (gateway/graphiql/), each named by its content."""
    # Read from the request, not as a typed parameter: FastAPI's analysis of a `str`
    # parameter walks every registered subclass of Mapping and Sequence, 0.1 s of each start.
    asset = served_assets().get(request.path_params["name"])
    if asset is None:
        error = {"message": "No such GraphiQL asset.", "extensions": {"code": "NOT_FOUND"}}
        return JSONResponse({"errors": [error]}, status_code=404)
    headers = {"Cache-Control": CACHE_FOREVER}
    return Response(asset.body, media_type=asset.media_type, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {"errors": [{"message": "Internal server error.", "extensions": {"code": "INTERNAL"}}]}
    headers = {**HEADERS, "Cache-Control": "no-store"}
    return JSONResponse(body, status_code=500, headers=headers)


def _background_loops(sources: Sources, settings: Settings) -> list[asyncio.Task[None]]:
    """The work `gateway serve` does besides requests, now and periodically."""
    return [
        # Finishes account deletions a crash interrupted.
        asyncio.create_task(
            sweep_forever(
                sources,
                interval=settings.deletion_sweep_interval_seconds,
                settle_seconds=settings.deletion_settle_seconds,
            ),
            name="deletion-sweep",
        ),
        # Delivers the activity events requests could not.
        asyncio.create_task(
            relay_forever(sources, interval=settings.outbox_relay_interval_seconds),
            name="outbox-relay",
        ),
    ]


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel a background loop and wait until it has ended, cancelling again should a
    cancellation be lost on its way (as asyncio on Python 3.11 can lose one)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def _nothing() -> None:
    pass


def _cut_after(grace: float) -> float:
    """When, after the signal, requests still running are stopped: just before the server
    gives up on them (SHUTDOWN_GRACE_SECONDS), so each still gets its answer."""
    return max(0.0, grace - min(0.5, grace / 2))


def _drain_on_signals(drain: Callable[[], None]) -> Callable[[], None]:
    """Run `drain` on the loop when SIGTERM or SIGINT arrives, then the handler that was
    there (the server's own, which starts its graceful shutdown). Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return _nothing
    loop = asyncio.get_running_loop()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(drain)
        handler = previous.get(sig)
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:  # nobody else listens: the default, after the drain
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, handler)

    return restore
