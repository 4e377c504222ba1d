"""A source that is down costs only its own fields: the rest of the answer still arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from datasources import analytics as analytics_source
from gateway.app import create_app
from gateway.core.settings import Settings
from tests.helpers import body_of, every_source_timeout, gql, make_strategy, make_user, token_for

# Nothing listens on port 9 (discard) of the loopback: connections are refused at once.
DOWN_TRADES_URL = "postgresql+asyncpg://postgres@127.0.0.1:9/x"
DOWN_CREDENTIALS_URI = "mongodb://127.0.0.1:9/credentials_db"
TIMEOUT = 1.0

DASHBOARD = """
{
  dashboard {
    user { email }
    strategyCounts { active total }
    activeStrategies { name }
    recentTrades { id }
    pnl { today allTime }
    equityCurve { day }
    credentialsConfigured
    recentActivity { kind }
  }
}
"""
# Each field of the dashboard fed by a failing source, and that source.
FAILED_FIELDS = {
    "recentTrades": "trades",
    "pnl": "trades",
    "equityCurve": "trades",
    "credentialsConfigured": "credentials",
}
# What a driver error would give away: hosts, ports, driver classes and messages.
LEAKS = (
    "127.0.0.1",
    "localhost",
    "postgres",
    "asyncpg",
    "pymongo",
    "mongodb",
    "Errno",
    "refused",
    "ServerSelection",
    "Timeout",
    "OSError",
    "Connect call failed",
)


@pytest.fixture(scope="module")
async def degraded_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with trades and credentials pointing at a closed port; the rest is healthy."""
    app = create_app(
        settings.model_copy(
            update={
                "trades_database_url": DOWN_TRADES_URL,
                "mongo_credentials_uri": DOWN_CREDENTIALS_URI,
                **every_source_timeout(TIMEOUT),
            }
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def degraded(degraded_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the degraded app in-process (ASGI)."""
    transport = httpx.ASGITransport(app=degraded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


async def ask(http: httpx.AsyncClient, query: str, token: str) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )


async def signed_in_with_an_active_strategy(sources, settings) -> str:
    """A user of the healthy sources with two strategies and a sign-in event; their token."""
    user = await make_user(sources, email="degraded@example.com")
    await make_strategy(sources, user, name="momentum", status="ACTIVE")
    await make_strategy(sources, user, name="idle", status="STOPPED")
    async with sources.analytics.engine.begin() as conn:
        await analytics_source.record_activity(conn=conn, user_id=user.id, kind="SIGNED_IN")
    return token_for(settings, user)


async def test_the_dashboard_keeps_every_field_of_the_healthy_sources(degraded, sources, settings):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, DASHBOARD, token)

    assert response.status_code == 200
    dashboard = response.json()["data"]["dashboard"]
    assert dashboard["user"] == {"email": "degraded@example.com"}
    assert dashboard["strategyCounts"] == {"active": 1, "total": 2}
    assert dashboard["activeStrategies"] == [{"name": "momentum"}]
    assert dashboard["recentActivity"] == [{"kind": "SIGNED_IN"}]


async def test_the_dashboard_fields_of_the_failed_sources_are_null(degraded, sources, settings):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, DASHBOARD, token)

    dashboard = response.json()["data"]["dashboard"]
    assert {field: dashboard[field] for field in FAILED_FIELDS} == dict.fromkeys(FAILED_FIELDS)


async def test_each_failed_field_has_exactly_one_error_naming_its_source(
    degraded, sources, settings
):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, DASHBOARD, token)

    errors = response.json()["errors"]
    by_field = {tuple(error["path"]): error for error in errors}
    assert len(by_field) == len(errors) == len(FAILED_FIELDS)
    for field, source in FAILED_FIELDS.items():
        error = by_field[("dashboard", field)]
        assert error["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": source}
        assert error["message"] == f"The {source} source is unavailable."


async def test_no_error_gives_away_a_host_port_or_driver_detail(degraded, sources, settings):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, DASHBOARD, token)

    messages = [error["message"] for error in response.json()["errors"]]
    assert messages
    for leak in LEAKS:
        assert not [message for message in messages if leak.lower() in message.lower()], leak
        assert leak not in response.text, leak


async def test_a_query_of_healthy_sources_only_has_no_errors(degraded, sources, settings):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, "{ me { email strategies { totalCount } } }", token)

    assert body_of(response) == {
        "data": {"me": {"email": "degraded@example.com", "strategies": {"totalCount": 2}}}
    }


async def test_a_root_list_of_a_failed_source_nulls_only_itself(degraded, sources, settings):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, "{ me { email } trades { totalCount } }", token)

    body = response.json()
    assert body["data"] == {"me": {"email": "degraded@example.com"}, "trades": None}
    assert [(error["path"], error["extensions"]) for error in body["errors"]] == [
        (["trades"], {"code": "SOURCE_UNAVAILABLE", "source": "trades"})
    ]


async def test_a_failed_source_answers_within_the_source_timeout(degraded, sources, settings):
    token = await signed_in_with_an_active_strategy(sources, settings)

    response = await ask(degraded, "{ dashboard { credentialsConfigured } }", token)

    assert response.json()["data"] == {"dashboard": {"credentialsConfigured": None}}
    assert response.elapsed.total_seconds() < TIMEOUT * 3


async def test_readyz_is_503_naming_the_failed_sources(degraded):
    response = await degraded.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    failed = {name for name, status in body["sources"].items() if not status["ok"]}
    assert failed == {"trades", "credentials"}
    for name in ("trades", "credentials"):
        assert body["sources"][name]["ok"] is False
        assert body["sources"][name]["error"] == "SOURCE_UNAVAILABLE"
    for name in ("users", "strategies", "analytics"):
        assert body["sources"][name]["ok"] is True
    for leak in LEAKS:
        assert leak not in response.text, leak


async def test_reads_survive_the_database_dropping_every_pooled_connection(
    client, sources, settings
):
    user = await make_user(sources)
    token = token_for(settings, user)
    query = "{ dashboard { pnl { allTime } recentTrades { id } } }"
    # Fill the pool with several idle connections.
    await asyncio.gather(*(gql(client, query, token=token) for _ in range(5)))
    async with sources.analytics.engine.connect() as conn:
        # From another database of the same server: end every session of the trades one,
        # as a restart or a failover would.
        ended = await conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": sources.trades.engine.url.database},
        )
        assert ended.scalar_one() >= 1

    answers = [await gql(client, query, token=token) for _ in range(3)]

    assert [body.get("errors") for body in answers] == [None, None, None]


async def test_the_sources_block_says_which_sources_failed_and_the_errors_stay(
    degraded, sources, settings
):
    token = await signed_in_with_an_active_strategy(sources, settings)
    query = DASHBOARD.replace("dashboard {", "dashboard { sources { name status latencyMs calls }")

    body = (await ask(degraded, query, token)).json()

    block = {entry["name"]: entry for entry in body["data"]["dashboard"]["sources"]}
    assert list(block) == ["users", "strategies", "credentials", "trades", "analytics"]
    assert {name: entry["status"] for name, entry in block.items()} == {
        "users": "OK",
        "strategies": "OK",
        "credentials": "UNAVAILABLE",
        "trades": "UNAVAILABLE",
        "analytics": "OK",
    }
    assert all(entry["calls"] >= 1 and entry["latencyMs"] >= 0 for entry in block.values())
    assert block["trades"]["latencyMs"] < (TIMEOUT + 0.5) * 1000
    failed = {error["extensions"]["source"] for error in body["errors"]}
    assert failed == {"credentials", "trades"}
