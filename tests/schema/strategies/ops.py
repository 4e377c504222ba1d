"""The strategy mutations as test helpers: one document and one helper per operation."""

from __future__ import annotations

import time
from typing import Any

import httpx
from bson import ObjectId
from sqlalchemy import select

from datasources import Sources
from datasources.analytics import activity_events
from datasources.strategies import StrategyRecord
from datasources.users import UserRecord
from tests.helpers import gid, gql, key

STRATEGY_FIELDS = """
id name code status containerId instrument broker environment config
lastAction autoReconnect errorMessage errorCount lastHeartbeat createdAt updatedAt
"""
CREATE = f"""
mutation Create($input: CreateStrategyInput!) {{
  createStrategy(input: $input) {{ strategy {{ {STRATEGY_FIELDS} }} }}
}}
"""
UPDATE = f"""
mutation Update($id: ID!, $input: UpdateStrategyInput!) {{
  updateStrategy(id: $id, input: $input) {{ {STRATEGY_FIELDS} }}
}}
"""
DELETE = "mutation Delete($id: ID!) { deleteStrategy(id: $id) { deletedId strategy { id name } } }"
ACTIONS = ("start", "stop", "pause", "resume")


def transition_document(action: str) -> str:
    """The document of one lifecycle mutation (`start` -> `startStrategy`)."""
    return f"""
mutation Transition($id: ID!) {{
  {action}Strategy(id: $id) {{ {STRATEGY_FIELDS} }}
}}
"""


def create_input(**overrides: Any) -> dict[str, Any]:
    """A valid CreateStrategyInput, with overrides."""
    values: dict[str, Any] = {
        "name": f"Mean reversion {time.perf_counter_ns()}",
        "code": "def on_tick(ctx, tick):\n    pass\n",
        "instrument": "BTCUSDT",
        "broker": "binance",
        "environment": "TESTNET",
        "config": {"timeframe": "5m", "risk": {"maxPosition": 2}},
        "autoReconnect": True,
    }
    values.update(overrides)
    return values


async def create(client: httpx.AsyncClient, token: str, **overrides: Any) -> dict[str, Any]:
    """Send createStrategy; returns the response body."""
    return await gql(client, CREATE, {"input": create_input(**overrides)}, token=token)


Strategy = StrategyRecord | str


def api_id(strategy: Strategy) -> str:
    """The id to send for a stored strategy (its global id), or an id given as is."""
    return strategy if isinstance(strategy, str) else gid(strategy)


async def update(
    client: httpx.AsyncClient, token: str, strategy: Strategy, **changes: Any
) -> dict[str, Any]:
    """Send updateStrategy with only `changes`; returns the response body."""
    return await gql(client, UPDATE, {"id": api_id(strategy), "input": changes}, token=token)


async def delete(client: httpx.AsyncClient, token: str, strategy: Strategy) -> dict[str, Any]:
    """Send deleteStrategy; returns the response body."""
    return await gql(client, DELETE, {"id": api_id(strategy)}, token=token)


async def transition(
    client: httpx.AsyncClient, token: str, action: str, strategy: Strategy
) -> dict[str, Any]:
    """Send one of startStrategy, stopStrategy, pauseStrategy, resumeStrategy."""
    return await gql(client, transition_document(action), {"id": api_id(strategy)}, token=token)


async def stored(sources: Sources, strategy: Strategy) -> dict[str, Any] | None:
    """The strategy's raw document, as the database holds it (by record or API id)."""
    strategy_id = strategy.id if isinstance(strategy, StrategyRecord) else key(strategy)
    return await sources.strategies.db["strategies"].find_one({"_id": ObjectId(strategy_id)})


async def stored_of(sources: Sources, user: UserRecord) -> list[dict[str, Any]]:
    """Every raw strategy document of a user."""
    cursor = sources.strategies.db["strategies"].find({"userId": ObjectId(user.id)})
    return [doc async for doc in cursor]


async def events_of(sources: Sources, user: UserRecord) -> list[dict[str, Any]]:
    """The user's activity events as stored, oldest first: kind, subjectId and data."""
    query = (
        select(activity_events)
        .where(activity_events.c.user_id == user.id)
        .order_by(activity_events.c.id)
    )
    async with sources.analytics.engine.connect() as conn:
        rows = list(await conn.execute(query))
    return [{"kind": row.kind, "subjectId": row.subject_id, "data": row.data} for row in rows]


async def strategy_events(sources: Sources, user: UserRecord) -> list[dict[str, Any]]:
    """The user's STRATEGY_* activity events, oldest first."""
    return [
        event for event in await events_of(sources, user) if event["kind"].startswith("STRATEGY_")
    ]


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The single error of a response whose data is null."""
    assert len(body.get("errors", [])) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error
