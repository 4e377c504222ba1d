"""CORS: the pages of which other origins may call `/graphql` from a browser (CORS_ORIGINS).

- A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) from an allowed
  origin is answered 204 here, before the rate limits and the request log: it names the
  methods (`GET`, `POST`) and request headers (`ALLOWED_HEADERS`) a page may use, and how
  long the browser may remember that (CORS_MAX_AGE_SECONDS). It costs no rate-limit
  bucket and no database. A preflight from any other origin, or asking for another
  method or header, is a 403 FORBIDDEN naming what is not allowed, with no CORS header,
  so the browser never sends the request.
- Any other request runs as it would without CORS: the answer to an allowed origin
  carries `Access-Control-Allow-Origin` (and exposes `X-Request-Id` and `Retry-After`);
  to any other origin it carries none, so its page cannot read it. Same-origin pages
  (GraphiQL) and servers (no `Origin`) are unaffected.
- `Access-Control-Allow-Credentials` only with CORS_ALLOW_CREDENTIALS, and never with
  `*` (the settings refuse the pair at start). The gateway's tokens travel in the
  `Authorization` header, which needs no credentials mode.

CORS is no access control: it only lets allowed pages read answers. What stops a foreign
page acting for a signed-in user is that tokens are bearer headers, never cookies, and
that a cross-origin POST of `application/json` (the only body the gateway takes) or with
an `Authorization` header cannot be sent without a preflight this module refuses.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORS_PATHS = frozenset({"/graphql"})
ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    # Apollo Client's client awareness and its CSRF-prevention headers.
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    # A request id of the caller's (gateway/observability.py), W3C trace context.
    "x-request-id",
    "traceparent",
    "tracestate",
)
# Persisted queries travel in the request's `extensions`, in the body or the query
# string: they need no header of their own.
EXPOSED_HEADERS = ("x-request-id", "retry-after")


class Cors:
    """ASGI middleware answering preflights and marking the answers to allowed origins."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: tuple[str, ...],
        allow_credentials: bool = False,
        max_age_seconds: int = 600,
    ) -> None:
        self.app = app
        self.any_origin = origins == ("*",)
        self.origins = frozenset(origins)
        self.allow_credentials = allow_credentials
        self.max_age_seconds = max_age_seconds

    def allows(self, origin: str) -> bool:
        """Whether pages of `origin` may read the answers."""
        return self.any_origin or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origins or scope["path"] not in CORS_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if (
            scope["method"] == "OPTIONS"
            and origin is not None
            and "access-control-request-method" in headers
        ):
            await self._preflight(origin, headers, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._mark(MutableHeaders(scope=message), origin)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _mark(self, headers: MutableHeaders, origin: str | None) -> None:
        if not self.any_origin:
            # The answer depends on the Origin: no cache may hand it to another.
            headers.add_vary_header("Origin")
        if origin is not None and self.allows(origin):
            headers["Access-Control-Allow-Origin"] = "*" if self.any_origin else origin
            headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
            if self.allow_credentials:
                headers["Access-Control-Allow-Credentials"] = "true"

    async def _preflight(self, origin: str, headers: Headers, send: Send) -> None:
        method = headers["access-control-request-method"].strip().upper()
        requested = [
            name.strip().lower()
            for name in headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        ]
        refused = [name for name in requested if name not in ALLOWED_HEADERS]
        problem = None
        if not self.allows(origin):
            problem = (
                f"Pages of origin {origin!r} may not call this API: it is not in CORS_ORIGINS."
            )
        elif method not in ALLOWED_METHODS:
            problem = f"Method {method!r} is not allowed; use GET or POST."
        elif refused:
            problem = (
                f"Request header(s) {', '.join(refused)} not allowed; allowed: "
                f"{', '.join(ALLOWED_HEADERS)}."
            )
        response = MutableHeaders()
        if problem is not None:
            body = json.dumps(
                {"errors": [{"message": problem, "extensions": {"code": "FORBIDDEN"}}]}
            )
            response["Content-Type"] = "application/json"
            self._mark(response, None)
            await _send(send, 403, response, body.encode())
            return
        self._mark(response, origin)
        response["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
        response["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
        response["Access-Control-Max-Age"] = str(self.max_age_seconds)
        del response["Access-Control-Expose-Headers"]  # for answers, not preflights
        await _send(send, 204, response, b"")


async def _send(send: Send, status: int, headers: MutableHeaders, body: bytes) -> None:
    headers["Content-Length"] = str(len(body))
    await send({"type": "http.response.start", "status": status, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body})
