"""Rate limits at the HTTP boundary: every request to `/graphql` spends one of its client
IP's requests before its body is read (HTTP 429 with `Retry-After` when none is left), and
carries its `RequestLimits` (the client IP, the limiter) to the GraphQL context, whose root
fields spend their own buckets (schema/_limits.py). An answer holding a RATE_LIMITED
error carries `Retry-After` too.

The client IP is the TCP peer's address; X-Forwarded-For is read only when that peer is one
of TRUSTED_PROXIES (`client_ip`), so a client cannot choose its own bucket.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.errors import RateLimited
from gateway.core.ratelimit import Limiter, RequestLimits, client_ip
from gateway.core.telemetry import response_extensions

LIMITED_PATHS = frozenset({"/graphql"})


class RateLimits:
    """ASGI middleware: the per-IP limit of whole requests, and each request's limits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in LIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        limiter: Limiter | None = getattr(scope["app"].state, "limiter", None)
        if limiter is None:  # no lifespan ran: nothing to limit with
            await self.app(scope, receive, send)
            return
        limits = RequestLimits(limiter=limiter, ip=_client_ip(scope, limiter))
        try:
            await limiter.check_request(limits.ip)
        except RateLimited as exc:
            await _refuse(send, exc)
            return
        scope.setdefault("state", {})["limits"] = limits

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start" and limits.retry_after:
                headers = [*message.get("headers", []), _retry_after(limits.retry_after)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_retry_after)


def _client_ip(scope: Scope, limiter: Limiter) -> str:
    client = scope.get("client")
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
    ]
    return client_ip(
        client[0] if client else None,
        forwarded,
        limiter.trusted_proxies,
    )


def _retry_after(seconds: int) -> tuple[bytes, bytes]:
    return (b"retry-after", str(seconds).encode())


async def _refuse(send: Send, exc: RateLimited) -> None:
    body: dict[str, Any] = {"errors": [{"message": exc.message, "extensions": exc.as_extensions()}]}
    if extensions := response_extensions():
        body["extensions"] = extensions
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                _retry_after(int(exc.extensions.get("retryAfter", 1))),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
