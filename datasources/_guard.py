"""Translate driver failures into the gateway's coded errors at the datasource boundary."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo.errors import DuplicateKeyError, PyMongoError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gateway.errors import Conflict, GatewayError, SourceUnavailable

log = logging.getLogger("gateway.sources")


@asynccontextmanager
async def guard(source: str, *, timeout: float) -> AsyncIterator[None]:  # noqa: ASYNC109 - applies it
    """Run a source call under `timeout`, mapping driver errors to coded ones.

    Most specific first: a unique-key violation is a CONFLICT; any other driver,
    network or timeout failure makes the source SOURCE_UNAVAILABLE. The driver's
    message is logged, never shown to the client.
    """
    try:
        async with asyncio.timeout(timeout):
            yield
    except GatewayError:
        raise
    except (DuplicateKeyError, IntegrityError) as exc:
        raise Conflict("That value is already taken.") from exc
    except (PyMongoError, SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("source %s failed: %s: %s", source, type(exc).__name__, exc)
        raise SourceUnavailable(source) from exc
