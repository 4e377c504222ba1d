"""Security headers on every response, and the GraphiQL page with its Content-Security-Policy.

One ASGI middleware, outermost, adds to every response of every route:

- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
- `Cache-Control: no-store` (unless the route set its own): answers hold account data,
  and a token-bearing sign-in answer must never sit in a shared cache;
- on HTML (the GraphiQL page) a Content-Security-Policy allowing only what the page
  loads: its pinned scripts and stylesheets from unpkg.com (with subresource integrity),
  its own inline script by hash, requests to this origin, and no framing.

The `Server` header is uvicorn's own; `gateway serve` turns it off (`server_header=False`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http.ides import get_graphql_ide_html

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def graphiql_page() -> tuple[str, str]:
    """The GraphiQL page and the Content-Security-Policy that lets it run, and no more."""
    html = get_graphql_ide_html("graphiql")
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src https://unpkg.com {hashes}",
            # GraphiQL's editor sets styles at run time.
            "style-src https://unpkg.com 'unsafe-inline'",
            "img-src data:",
            "font-src https://unpkg.com data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return html, policy


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
                    headers["Content-Security-Policy"] = graphiql_page()[1]
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)
