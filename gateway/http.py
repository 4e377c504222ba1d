"""GraphQL over HTTP (the GraphQL-over-HTTP specification), GraphiQL, and health endpoints.

- GET runs queries only (a mutation is 405 with `Allow: POST`); POST takes an
  `application/json` body.
- Persisted operations (gateway/persisted.py): instead of its `query`, a request may name
  a document by `extensions.persistedQuery` (Apollo's APQ) or `documentId`; the document
  found runs as if sent, through every limit.
- The response is `application/graphql-response+json` when the client accepts
  it, else `application/json`. With the former, a request that fails before
  execution (syntax, validation, variables) is a 400; with the latter, any
  well-formed request is a 200, as legacy clients expect. Either way a request
  that fails before execution has no `data` entry.
- A document with several operations needs an `operationName`.
- A lone UTF-16 surrogate anywhere in the request (JSON allows escaping one) is a
  400 request error: it is no Unicode text, and nothing could store or hash it.
- GET from a browser (Accept: text/html, no query) serves GraphiQL (when enabled).
- Bounded work (README "Limits on every request"): a POST body over MAX_BODY_BYTES is a
  413 as soon as its Content-Length says so or, without one, as soon as that many bytes
  have arrived: it is never buffered whole. A document over MAX_DOCUMENT_CHARS characters
  or MAX_QUERY_TOKENS tokens (comments count) is refused QUERY_TOO_COMPLEX before it is
  parsed; an answer over MAX_RESPONSE_BYTES once serialized is RESPONSE_TOO_LARGE.
- More than one Authorization header is UNAUTHENTICATED: no guessing which one counts.
- Every request ends by its deadline (REQUEST_TIMEOUT_SECONDS): its source calls end
  just before it (fields of a late source answer SOURCE_UNAVAILABLE, the rest is
  returned), and whatever else still runs at it is stopped: 504, GATEWAY_TIMEOUT. At shutdown,
  requests still running as the grace period runs out are stopped the same way: 503,
  SHUTTING_DOWN (`InFlight.drain`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from datasources import Sources, deadline, observe
from gateway.core.auth import TokenService
from gateway.core.errors import (
    BadUserInput,
    GatewayError,
    OperationNotTrusted,
    PersistedQueryMismatch,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    QueryTooComplex,
    RequestTimedOut,
    ResponseTooLarge,
    ShuttingDown,
)
from gateway.core.settings import Settings
from gateway.core.telemetry import response_extensions
from gateway.persisted import PersistedOperations, Resolved, read_persisted_query
from gateway.security import graphiql_page
from resolvers.context import Context
from schema import GatewaySchema

T = TypeVar("T")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_ALLOWED_ON_GET = (OperationType.QUERY,)
_ALLOWED_ON_POST = (OperationType.QUERY, OperationType.MUTATION)
_SURROGATE = re.compile("[\ud800-\udfff]")
# The end of a request's deadline kept for assembling its answer: its source calls end
# this much earlier (at most a fifth of the deadline), so the fields of a late source are
# answered SOURCE_UNAVAILABLE with the rest before the request itself is stopped.
_ASSEMBLY_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """The parameters of one GraphQL request, however they arrived."""

    query: str | None  # None: the request names a persisted document instead
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    persisted_hash: str | None = None  # extensions.persistedQuery.sha256Hash
    document_id: str | None = None


class RequestError(Exception):
    """Raised when an HTTP request is not a well-formed GraphQL request."""

    def __init__(
        self,
        status: int | None,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        code: str = "BAD_USER_INPUT",
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        # None: as a validation error is (400 in graphql-response+json, 200 in legacy JSON).
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.code = code
        self.extensions = dict(extensions or {})


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The response media type for this Accept header, or None when neither is acceptable.

    Each type takes its own quality if listed, else a wildcard's. On a tie an
    explicitly listed `application/graphql-response+json` wins, while a bare
    wildcard gets `application/json`: such clients predate the new type.
    """
    if not accept or not accept.strip():
        return JSON
    ranges = _media_ranges(accept)
    listed = {media: q for media, q in ranges if media in (GRAPHQL_RESPONSE, JSON)}
    wildcard = max((q for media, q in ranges if media in ("*/*", "application/*")), default=0.0)
    quality = {media: listed.get(media, wildcard) for media in (JSON, GRAPHQL_RESPONSE)}
    best = max(quality.values())
    if best <= 0:
        return None
    if quality[GRAPHQL_RESPONSE] == best and GRAPHQL_RESPONSE in listed:
        return GRAPHQL_RESPONSE
    return JSON if quality[JSON] == best else GRAPHQL_RESPONSE


def wants_graphiql(request: Request) -> bool:
    """Whether a GET is a browser asking for a page rather than a GraphQL result."""
    ranges = _media_ranges(request.headers.get("accept", ""))
    html = any(media == "text/html" and q > 0 for media, q in ranges)
    named = ("query", "extensions", "documentId")  # a persisted query is a request too
    return html and not any(name in request.query_params for name in named)


def _json_param(value: Any, name: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        # Nested past the parser's stack, or an integer of more digits than Python converts
        # (ValueError, of which JSONDecodeError is one).
        except (ValueError, RecursionError) as exc:
            raise RequestError(400, f"'{name}' is not valid JSON.") from exc
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(400, f"'{name}' must be a JSON object.")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string or key inside a decoded JSON value holds a lone UTF-16 surrogate.

    JSON escapes may spell half a pair ("\\ud800"); `json.loads` joins whole pairs, so any
    surrogate left is lone: no Unicode text, and nothing (hash, BSON, cipher) can encode it.
    """
    pending = [value]
    while pending:  # iterative: a deeply nested value cannot exhaust the stack
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _parse(params: Mapping[str, Any]) -> GraphQLRequest:
    query = params.get("query")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "'query' must be a string.")
    operation_name = params.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "'operationName' must be a string.")
    document_id = params.get("documentId")
    if document_id is not None and (not isinstance(document_id, str) or not document_id):
        raise RequestError(400, "'documentId' must be a non-empty string.")
    extensions = _json_param(params.get("extensions"), "extensions")
    try:
        persisted_hash = read_persisted_query(extensions)
    except BadUserInput as exc:
        raise RequestError(400, exc.message, extensions=exc.extensions) from exc
    if not query or not query.strip():
        if persisted_hash is None and document_id is None:
            raise RequestError(400, "The request has no GraphQL 'query'.")
        query = None  # a hash-only request: the document is looked up
    request = GraphQLRequest(
        query=query,
        variables=_json_param(params.get("variables"), "variables"),
        operation_name=operation_name or None,
        extensions=extensions,
        persisted_hash=persisted_hash,
        document_id=document_id,
    )
    # Refused once here, before anything runs, rather than by every resolver that encodes text.
    if _has_lone_surrogate(
        [
            request.query,
            request.operation_name,
            request.variables,
            request.extensions,
            request.document_id,
        ]
    ):
        message = "The request holds a lone UTF-16 surrogate (such as '\\ud800'): not Unicode text."
        raise RequestError(400, message)
    return request


def _too_large(max_bytes: int) -> RequestError:
    return RequestError(
        413, f"The request body is larger than {max_bytes} bytes.", headers={"Connection": "close"}
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) once it is known to exceed `max_bytes`: by its declared
    Content-Length before any of it is read, else as soon as that many bytes arrived."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_request(request: Request, max_body_bytes: int = 1_000_000) -> GraphQLRequest:
    """The GraphQL request carried by a GET query string or a POST JSON body."""
    if request.method == "GET":
        return _parse(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise RequestError(415, "POST bodies must be 'application/json'.")
    raw = await read_body(request, max_body_bytes)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise RequestError(400, "The body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise RequestError(400, "The body must be a JSON object.")
    return _parse(body)


def _error_body(
    message: str, code: str = "BAD_USER_INPUT", extensions: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    error = {"message": message, "extensions": {**(extensions or {}), "code": code}}
    body: dict[str, Any] = {"errors": [error]}
    if extensions := response_extensions():  # the request id (gateway/observability.py)
        body["extensions"] = extensions
    return body


def failed_before_execution(result: ExecutionResult) -> bool:
    """Whether the request failed before execution (syntax, validation, variables).

    Such a result has no data and only errors without a path: a field error,
    even one that nulls the whole `data`, always has one.
    """
    return (
        result.data is None
        and bool(result.errors)
        and all(
            not isinstance(error, GraphQLError) or error.path is None
            for error in result.errors or []
        )
    )


def _status(result: ExecutionResult, media_type: str) -> int:
    if media_type != GRAPHQL_RESPONSE:
        return 200
    return 400 if failed_before_execution(result) else 200


def result_body(result: ExecutionResult) -> dict[str, Any]:
    """The JSON body of an execution result; no `data` entry if execution never began."""
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if not failed_before_execution(result):
        body["data"] = result.data
    if extensions := response_extensions(result.extensions):  # the request id, with any other
        body["extensions"] = extensions
    return body


class GraphQLResponse(JSONResponse):
    """A GraphQL answer, encoded by orjson: the same compact UTF-8 JSON values as Starlette's
    `json.dumps`, several times faster on a large answer. A value orjson refuses (an integer
    past 64 bits, say, in a JSON scalar) is encoded by `json.dumps` as before."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


def _has_several_operations(schema: GatewaySchema, query: str) -> bool:
    # Strawberry would run the first operation; the spec makes this a request error.
    # A document that does not parse is left for the schema to report. Parsed through
    # the schema's cache (bounded in bytes), which the execution then hits.
    try:
        document = schema.documents.parse(query, max_tokens=schema.limits.max_tokens)
    except GraphQLError:
        return False
    operations = (d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return sum(1 for _ in operations) > 1


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class InFlight:
    """The executions running now, each bounded by its deadline; `drain` stops them all
    when the shutdown grace runs out."""

    def __init__(self) -> None:
        self._cuts: set[asyncio.Future[GatewayError]] = set()
        self._drain_at: float | None = None

    def __len__(self) -> int:
        return len(self._cuts)

    async def run(self, work: Coroutine[Any, Any, T], seconds: float) -> T:
        """`work`'s result, or RequestTimedOut after `seconds` (ShuttingDown when drained
        first). The work runs in a task of its own: the answer goes out at once when it is
        cut, while the work stops in the background (its compensations may still run)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)
        cut: asyncio.Future[GatewayError] = loop.create_future()
        timer = loop.call_later(seconds, _cut, cut, RequestTimedOut)
        drain = None
        if self._drain_at is not None:
            drain = loop.call_at(self._drain_at, _cut, cut, ShuttingDown)
        self._cuts.add(cut)
        try:
            await asyncio.wait((task, cut), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(_retrieve)
            raise
        finally:
            timer.cancel()
            if drain is not None:
                drain.cancel()
            self._cuts.discard(cut)
        if task.done():
            cut.cancel()
            return task.result()
        task.cancel()
        task.add_done_callback(_retrieve)
        raise cut.result()

    def drain(self, within: float) -> None:
        """Stop every execution still running `within` seconds from now, and every one
        started after this call by then."""
        loop = asyncio.get_running_loop()
        self._drain_at = loop.time() + within
        for cut in list(self._cuts):
            loop.call_at(self._drain_at, _cut, cut, ShuttingDown)


def _cut(cut: asyncio.Future[GatewayError], error: Callable[[], GatewayError]) -> None:
    if not cut.done():
        cut.set_result(error())


# The HTTP status (and headers) of each refusal of a persisted operation, as Apollo Server
# answers them: a miss is a 200 no cache may keep (its client is about to fill the store).
# Any other GatewayError there is the database of trusted operations failing: 503.
_UNCACHED = {"Cache-Control": "private, no-cache, must-revalidate"}
_PERSISTED_ANSWERS: dict[type[GatewayError], tuple[int, dict[str, str]]] = {
    PersistedQueryNotFound: (200, _UNCACHED),
    PersistedQueryNotSupported: (200, _UNCACHED),
    PersistedQueryMismatch: (400, {}),
    OperationNotTrusted: (403, {}),
}


def _stopped(error: GatewayError, media_type: str) -> Response:
    """The answer to a request stopped before it finished: past its deadline (504), or by
    the shutdown (503, to be sent again, elsewhere)."""
    body = {"data": None, **_error_body(error.message, error.code)}
    if isinstance(error, ShuttingDown):
        headers = {"Retry-After": "1", "Connection": "close"}
        return JSONResponse(body, status_code=503, headers=headers, media_type=media_type)
    return JSONResponse(body, status_code=504, media_type=media_type)


class GraphQLEndpoint:
    """Serves `/graphql`: GraphiQL for browsers, GraphQL over HTTP for everyone else."""

    def __init__(
        self, *, schema: GatewaySchema, sources: Sources, tokens: TokenService, settings: Settings
    ) -> None:
        self.schema = schema
        self.sources = sources
        self.tokens = tokens
        self.settings = settings
        self.in_flight = InFlight()
        self.persisted = PersistedOperations(settings, sources.users)

    async def close(self) -> None:
        """Release what the endpoint holds (the persisted-query store's Redis client)."""
        await self.persisted.close()

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET" and wants_graphiql(request):
            if not self.settings.graphiql_enabled:
                return JSONResponse(_error_body("GraphiQL is disabled."), status_code=404)
            return HTMLResponse(graphiql_page()[0])
        media_type = negotiate(request.headers.get("accept"))
        if media_type is None:
            return JSONResponse(
                _error_body(f"Accept '{GRAPHQL_RESPONSE}' or '{JSON}'."), status_code=406
            )
        try:
            graphql_request = await read_request(request, self.settings.max_body_bytes)
            document = await self._resolve(graphql_request)
            result = await self._execute(request, graphql_request, document.query)
            if document.register is not None and not failed_before_execution(result):
                # Parsed and validated, every limit passed: worth keeping.
                await self.persisted.register(document.register, document.query)
        except RequestError as exc:
            status = exc.status or (400 if media_type == GRAPHQL_RESPONSE else 200)
            return JSONResponse(
                _error_body(exc.message, exc.code, exc.extensions),
                status_code=status,
                headers=exc.headers,
                media_type=media_type,
            )
        except (RequestTimedOut, ShuttingDown) as exc:
            return _stopped(exc, media_type)
        return self._answer(result, media_type)

    def _answer(self, result: ExecutionResult, media_type: str) -> Response:
        """The response to an executed request; RESPONSE_TOO_LARGE, without data, if its
        body would exceed MAX_RESPONSE_BYTES (execution stops near it already)."""
        response = GraphQLResponse(
            result_body(result), status_code=_status(result, media_type), media_type=media_type
        )
        maximum = self.settings.max_response_bytes
        if len(response.body) > maximum:
            error = ResponseTooLarge(
                f"The response would be larger than {maximum} bytes; ask for fewer fields "
                "or smaller pages.",
                limit="bytes",
                maximum=maximum,
            )
            body = {"data": None, **_error_body(error.message, error.code, error.extensions)}
            return JSONResponse(body, media_type=media_type)
        return response

    async def _resolve(self, graphql: GraphQLRequest) -> Resolved:
        """The document the request runs: its query, or the persisted one it names."""
        try:
            return await self.persisted.resolve(
                query=graphql.query, sha256=graphql.persisted_hash, document_id=graphql.document_id
            )
        except GatewayError as exc:
            status, headers = _PERSISTED_ANSWERS.get(type(exc), (503, {}))
            if isinstance(exc, PersistedQueryNotFound) and self.persisted.mode == "trusted":
                status = 404  # as Apollo Router answers an unknown id of its safelist
            raise RequestError(
                status, exc.message, headers, code=exc.code, extensions=exc.extensions
            ) from exc

    async def _execute(
        self, request: Request, graphql: GraphQLRequest, query: str
    ) -> ExecutionResult:
        try:
            self.schema.documents.check(query)
        except QueryTooComplex as exc:  # refused before it is parsed
            raise RequestError(None, exc.message, code=exc.code, extensions=exc.extensions) from exc
        if graphql.operation_name is None and _has_several_operations(self.schema, query):
            raise RequestError(400, "The document has several operations: send 'operationName'.")
        context = Context(
            sources=self.sources,
            tokens=self.tokens,
            settings=self.settings,
            authorization=request.headers.getlist("authorization"),
        )
        context.request = request
        context.limits = getattr(request.state, "limits", context.limits)  # gateway/ratelimits.py
        allowed = _ALLOWED_ON_GET if request.method == "GET" else _ALLOWED_ON_POST
        seconds = self.settings.request_timeout_seconds
        try:
            with deadline(seconds - min(_ASSEMBLY_SECONDS, seconds / 5)), observe():
                return await self.in_flight.run(
                    self.schema.execute(
                        query,
                        variable_values=graphql.variables,
                        context_value=context,
                        operation_name=graphql.operation_name,
                        allowed_operation_types=allowed,
                        operation_extensions=graphql.extensions,
                    ),
                    seconds,
                )
        except InvalidOperationTypeError as exc:
            if request.method == "GET" and exc.operation_type is OperationType.MUTATION:
                raise RequestError(
                    405, "Mutations must be sent with POST.", headers={"Allow": "POST"}
                ) from exc
            raise RequestError(400, "This operation type is not supported here.") from exc
        except CannotGetOperationTypeError as exc:
            raise RequestError(400, "No operation with that 'operationName'.") from exc
        except MissingQueryError as exc:
            raise RequestError(400, "The request has no GraphQL 'query'.") from exc
