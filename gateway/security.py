"""Security headers on every response, and the GraphiQL page with its Content-Security-Policy.

One ASGI middleware, outermost, adds to every response of every route:

- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
- `Cache-Control: no-store` (unless the route set its own): answers hold account data,
  and a token-bearing sign-in answer must never sit in a shared cache;
- on HTML (the GraphiQL page) a Content-Security-Policy allowing only what the page
  loads: scripts, stylesheets and requests of this origin (the assets are the gateway's
  own, gateway/graphiql/), `data:` images and fonts, and no framing.

The `Server` header is uvicorn's own; `gateway serve` turns it off (`server_header=False`).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import graphiql

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def graphiql_page() -> tuple[str, str]:
    """The GraphiQL page and the Content-Security-Policy that lets it run, and no more."""
    return graphiql.page(), graphiql.POLICY


class SecurityHeaders:
    """Adds the security headers above to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                headers.setdefault("Cache-Control", "no-store")
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = graphiql.POLICY
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)
