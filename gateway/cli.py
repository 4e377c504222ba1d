"""The `gateway` command: serve, demo, migrate, analytics refresh, schema print."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datasources import Sources
from datasources.analytics import RefreshResult, refresh_daily_metrics
from gateway.app import create_app
from gateway.deletion import SweepResult, finish_deletions
from gateway.settings import Settings

console = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Only the messages: pydantic's own rendering echoes the input, secrets included.
        console.print("Invalid configuration:", style="red", markup=False)
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            console.print(
                f"  {where}: {error['msg']}", markup=False, highlight=False, soft_wrap=True
            )
        raise SystemExit(2) from exc


async def _migrate(settings: Settings) -> None:
    sources = Sources.open(settings)
    try:
        await sources.migrate()
    finally:
        await sources.close()


async def _refresh(settings: Settings, since: date | None, progress: bool) -> RefreshResult:
    sources = Sources.open(settings)
    try:
        if not progress:
            return await refresh_daily_metrics(
                trades_engine=sources.trades, analytics_engine=sources.analytics, since=since
            )
        with Progress(
            TextColumn("rolling up trades"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("refresh", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return await refresh_daily_metrics(
                trades_engine=sources.trades,
                analytics_engine=sources.analytics,
                since=since,
                on_progress=advance,
            )
    finally:
        await sources.close()


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway against the configured databases."""
    settings = _settings()
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Create indexes and tables; safe to run again."""
    asyncio.run(_migrate(_settings()))
    console.print("[green]migrated[/green]: Mongo indexes and SQL tables are in place")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Roll trades up into daily_strategy_metrics."""
    result = asyncio.run(_refresh(_settings(), args.since, progress=console.is_terminal))
    console.print(
        f"[green]refreshed[/green]: {result.trades_read} trades read, "
        f"{result.rows_written} daily rows written"
        + (f" from {result.since.isoformat()}" if result.since else "")
    )
    return 0


async def _finish_deletions(settings: Settings) -> SweepResult:
    sources = Sources.open(settings)
    try:
        return await finish_deletions(sources)
    finally:
        await sources.close()


def cmd_finish_deletions(_args: argparse.Namespace) -> int:
    """Complete account deletions that were interrupted."""
    result = asyncio.run(_finish_deletions(_settings()))
    console.print(
        f"[green]deletions[/green]: {len(result.finished)} finished, {len(result.failed)} pending"
    )
    for user_id in result.failed:
        console.print(f"  still pending: {user_id} (a source is unavailable; run again later)")
    return 1 if result.failed else 0


def cmd_schema_print(_args: argparse.Namespace) -> int:
    """Print the schema in SDL."""
    from schema import build_schema  # noqa: PLC0415 - only this command needs it

    sys.stdout.write(build_schema().as_str() + "\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded databases, seed them once, and serve with GraphiQL."""
    from gateway.demo import run_demo  # noqa: PLC0415 - keeps the embedded server out of serve

    return run_demo(host=args.host, port=args.port, data_dir=Path(args.data_dir))


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default=".gateway-demo")
    demo.set_defaults(handler=cmd_demo)

    migrate = commands.add_parser("migrate", help=cmd_migrate.__doc__)
    migrate.set_defaults(handler=cmd_migrate)

    analytics = commands.add_parser("analytics", help="Analytics maintenance.")
    analytics_commands = analytics.add_subparsers(dest="analytics_command", required=True)
    refresh = analytics_commands.add_parser("refresh", help=cmd_refresh.__doc__)
    refresh.add_argument(
        "--since", type=date.fromisoformat, default=None, help="first UTC day to recompute"
    )
    refresh.set_defaults(handler=cmd_refresh)

    accounts = commands.add_parser("accounts", help="Account maintenance.")
    accounts_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    finish = accounts_commands.add_parser("finish-deletions", help=cmd_finish_deletions.__doc__)
    finish.set_defaults(handler=cmd_finish_deletions)

    schema = commands.add_parser("schema", help="Schema tools.")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True)
    print_schema = schema_commands.add_parser("print", help=cmd_schema_print.__doc__)
    print_schema.set_defaults(handler=cmd_schema_print)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
