"""Redis clients, with the library imported only once a setting names a Redis.

redis-py loads about sixty modules of its own and, through its observability hooks, the
OpenTelemetry SDK: a tenth of a second of every start, which a process without REDIS_URL
(or APQ_REDIS_URL) never needs. Nothing else of ours imports `redis`; a test checks that
serving without Redis does not load it (tests/unit/test_cold_start.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["connect", "failures"]


def connect(url: str, *, timeout_seconds: float) -> aioredis.Redis:
    """A client of the Redis at `url` that gives up on a connection or a command after
    `timeout_seconds` and never retries on its own: its callers fall back instead."""
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with a Redis (module docstring)

    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry_on_timeout=False,
    )


def failures() -> tuple[type[BaseException], ...]:
    """What a call to Redis raises when Redis is down, slow or refuses, for an `except`
    clause around such a call (evaluated only once something was raised, when a client, and
    so the library, exists)."""
    from redis.exceptions import RedisError  # noqa: PLC0415 - only with a Redis

    return (RedisError, OSError, TimeoutError)
