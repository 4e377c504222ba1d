"""`gateway demo`: everything a newcomer needs, on one machine, with nothing but Python.

SecantusDB (a child process) holds the three Mongo databases under the data
folder, SQLite files hold trades and analytics; both are reused on the next start.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvicorn
from rich.console import Console

from datasources import Sources
from datasources.analytics import refresh_daily_metrics
from gateway.app import create_app
from gateway.core.crypto import SecretBox
from gateway.core.logs import logging_config
from gateway.core.settings import Settings
from gateway.embedded import EmbeddedMongo, EmbeddedMongoError, free_port
from gateway.seed import DEMO_EMAIL, DEMO_PASSWORD, is_seeded, seed_demo

console = Console(stderr=True)


def demo_settings(mongo: EmbeddedMongo, data_dir: Path) -> Settings:
    """Settings for the embedded databases in `data_dir`."""
    return Settings(
        gateway_env="development",
        mongo_user_uri=mongo.uri("user_db"),
        mongo_strategy_uri=mongo.uri("strategy_db"),
        mongo_credentials_uri=mongo.uri("credentials_db"),
        trades_database_url=f"sqlite+aiosqlite:///{data_dir / 'trades.sqlite3'}",
        analytics_database_url=f"sqlite+aiosqlite:///{data_dir / 'analytics.sqlite3'}",
    )


async def prepare(settings: Settings) -> None:
    """Migrate, and seed and roll up the demo data unless it is already there."""
    async with Sources.open(settings) as sources:
        await sources.migrate()
        if await is_seeded(sources):
            console.print("demo data found, reusing it")
            return
        console.print("seeding the demo dataset…")
        summary = await seed_demo(sources, box=SecretBox.from_settings(settings))
        await refresh_daily_metrics(
            trades_engine=sources.trades.engine, analytics_engine=sources.analytics.engine
        )
        console.print(
            f"seeded {summary.users} users, {summary.strategies} strategies, "
            f"{summary.trades} trades"
        )


def run_demo(*, host: str, port: int, data_dir: Path) -> int:
    """Run the demo until interrupted; the child server is stopped on every exit path."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    mongo = EmbeddedMongo(data_dir / "mongo", port=free_port())
    try:
        mongo.start()
    except EmbeddedMongoError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    try:
        settings = demo_settings(mongo, data_dir)
        asyncio.run(prepare(settings))
        console.print(
            f"\n[bold]GraphiQL:[/bold] http://{host}:{port}/graphql\n"
            f"[bold]Sign in:[/bold]  {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
            f"[bold]Data:[/bold]     {data_dir}\n"
        )
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            # Text lines for a person at a terminal, each request's with its request id.
            log_config=logging_config("text", "info"),
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    except KeyboardInterrupt:
        pass
    finally:
        mongo.stop()
    return 0
