"""The `gateway` command: serve, demo, migrate, analytics refresh, schema print and check,
operations."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datasources import Sources, persisted_operations
from datasources import users as users_source
from datasources.analytics import RefreshResult, refresh_daily_metrics
from datasources.credentials import RotationResult, rotate_credentials
from datasources.persisted_operations import PersistedOperation, SaveResult
from datasources.users import UserRecord
from gateway.core import logs, telemetry
from gateway.core.crypto import SecretBox
from gateway.core.settings import Settings
from gateway.migrate_cli import add_migrate_commands, run_migrate
from gateway.persisted import ManifestError, parse_manifest
from resolvers.deletion import SweepResult, finish_deletions

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


@contextmanager
def _progress(label: str, *, shown: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar's `on_progress(done, total)` callback; None when not on a terminal."""
    if not shown:
        yield None
        return
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


async def _refresh(settings: Settings, since: date | None, progress: bool) -> RefreshResult:
    async with Sources.open(settings) as sources:
        with _progress("rolling up trades", shown=progress) as advance:
            return await refresh_daily_metrics(
                trades_engine=sources.trades.engine,
                analytics_engine=sources.analytics.engine,
                since=since,
                on_progress=advance,
            )


async def _rotate(settings: Settings, progress: bool) -> RotationResult:
    box = SecretBox.from_settings(settings)
    async with Sources.open(settings) as sources:
        label = f"re-encrypting under key {box.current_kid!r}"
        with _progress(label, shown=progress) as advance:
            return await rotate_credentials(db=sources.credentials.db, box=box, on_progress=advance)


def _share_metrics(workers: int) -> None:
    """Make the workers' metrics one set: each writes to PROMETHEUS_MULTIPROC_DIR (a
    temporary directory when several run and none is set), emptied first of an earlier
    run's files. Set before any worker starts, so each reads it as it imports."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path is None:
        if workers == 1:
            return
        path = tempfile.mkdtemp(prefix="gateway-metrics-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    telemetry.prepare_multiprocess_dir(path)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway against the configured databases."""
    settings = _settings()
    if args.workers < 1:
        console.print("[red]--workers must be at least 1[/red]")
        return 2
    _share_metrics(args.workers)
    if settings.metrics_enabled and settings.metrics_port is not None:
        # Served by this process (the workers' supervisor when there are several).
        from prometheus_client import start_http_server  # noqa: PLC0415 - serve only

        start_http_server(
            settings.metrics_port,
            addr=settings.metrics_host,
            registry=telemetry.metrics_registry(),
        )
    uvicorn.run(
        # By name, so that each worker builds its own app (and sources, breakers, pools);
        # each drains its requests on SIGTERM (gateway/app.py).
        "gateway.app:app_from_environment",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=logs.logging_config(settings.log_format, args.log_level),
        # The app logs each request itself, with its request id (gateway/observability.py).
        access_log=False,
        # The client IP is read by the gateway itself, trusting TRUSTED_PROXIES only
        # (gateway/ratelimits.py): uvicorn's own X-Forwarded-For handling is off.
        proxy_headers=False,
        # `Server: uvicorn` names the stack to whoever probes it.
        server_header=False,
        # On SIGTERM, requests in flight get this long before they are cancelled.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring every source to its newest version; `status`, `history`, `down --to REV`
    (README, "Migrations")."""
    return run_migrate(args, _settings())


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
    async with Sources.open(settings) as sources:
        return await finish_deletions(sources, settle_seconds=settings.deletion_settle_seconds)


def cmd_finish_deletions(_args: argparse.Namespace) -> int:
    """Complete account deletions that were interrupted."""
    result = asyncio.run(_finish_deletions(_settings()))
    console.print(
        f"[green]deletions[/green]: {len(result.finished)} finished, "
        f"{len(result.failed)} pending, {len(result.settling)} settling"
    )
    for user_id in result.failed:
        console.print(f"  still pending: {user_id} (a source is unavailable; run again later)")
    for user_id in result.settling:
        console.print(
            f"  settling: {user_id} (every step done; it ends once DELETION_SETTLE_SECONDS "
            "have passed: run again then)"
        )
    return 1 if result.failed else 0


async def _set_role(settings: Settings, email: str, role: str) -> UserRecord | None:
    async with Sources.open(settings) as sources:
        return await users_source.set_user_role(db=sources.users.db, email=email, role=role)


def _change_role(email: str, role: str) -> int:
    user = asyncio.run(_set_role(_settings(), email, role))
    if user is None:
        console.print(f"[red]no user with the email {escape(email)!r}[/red]", highlight=False)
        return 1
    # Read from the database on every request: the new role applies at once.
    console.print(f"[green]{role.lower()}[/green]: {escape(user.email)} is now {role}")
    return 0


def cmd_accounts_promote(args: argparse.Namespace) -> int:
    """Make the user with this email an ADMIN."""
    return _change_role(args.email, "ADMIN")


def cmd_accounts_demote(args: argparse.Namespace) -> int:
    """Make the user with this email an ordinary USER again."""
    return _change_role(args.email, "USER")


def cmd_credentials_rotate(_args: argparse.Namespace) -> int:
    """Re-encrypt every stored broker secret under the current key; safe to rerun."""
    result = asyncio.run(_rotate(_settings(), progress=console.is_terminal))
    console.print(
        f"[green]rotated[/green]: {result.secrets_rotated} secrets in "
        f"{result.documents_rotated} documents re-encrypted under key {result.kid!r} "
        f"({result.documents_checked} documents checked)",
        highlight=False,
    )
    if result.documents_skipped:
        console.print(
            f"[yellow]{result.documents_skipped} documents kept changing while rotating; "
            "run the command again[/yellow]"
        )
    if result.unreadable_secrets:
        shown = ", ".join(result.unreadable_user_ids[:50])
        more = len(result.unreadable_user_ids) - 50
        console.print(
            f"[red]{result.unreadable_secrets} secrets of "
            f"{len(result.unreadable_user_ids)} users could not be decrypted "
            "(unknown key id, or altered) and were left as they are[/red]: "
            + shown
            + (f" and {more} more" if more > 0 else ""),
            highlight=False,
        )
    # Not every secret is under the current key: the old key must not be dropped yet.
    return 1 if result.unreadable_secrets or result.documents_skipped else 0


def _read_manifests(paths: Sequence[str]) -> list[PersistedOperation] | None:
    """The operations of every manifest, one per id; None (the problems printed) when any
    manifest cannot be read or is refused, or two give one id different bodies."""
    operations: dict[str, PersistedOperation] = {}
    problems: list[str] = []
    for path in paths:
        try:
            found = parse_manifest(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
            continue
        except (ManifestError, UnicodeDecodeError) as exc:
            reasons = exc.problems if isinstance(exc, ManifestError) else ["not UTF-8 text"]
            problems.extend(f"{path}: {reason}" for reason in reasons)
            continue
        for operation in found:
            known = operations.setdefault(operation.id, operation)
            if known.body != operation.body:
                problems.append(f"{path}: operation {operation.id!r} differs from an earlier one")
    if problems:
        console.print("[red]refused; nothing was added[/red]:")
        for problem in problems[:50]:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        if len(problems) > 50:
            console.print(f"  and {len(problems) - 50} more problems")
        return None
    return list(operations.values())


async def _save_operations(
    settings: Settings, operations: list[PersistedOperation]
) -> tuple[SaveResult, int]:
    """What saving did, and how many trusted operations are stored now."""
    async with Sources.open(settings) as sources:
        await persisted_operations.ensure_indexes(db=sources.users.db)
        result = await persisted_operations.save_operations(
            db=sources.users.db, operations=operations
        )
        stored = await persisted_operations.count_operations(db=sources.users.db)
        return result, stored


def cmd_operations_add(args: argparse.Namespace) -> int:
    """Register the operations of manifests (Apollo's or graphql-codegen's) as trusted."""
    settings = _settings()
    operations = _read_manifests(args.manifests)
    if operations is None:
        return 1
    result, stored = asyncio.run(_save_operations(settings, operations))
    if result.conflicts:
        console.print(
            "[red]refused; nothing was added[/red]: these ids are registered already with "
            "another body (remove them first): " + ", ".join(result.conflicts),
            highlight=False,
        )
        return 1
    console.print(
        f"[green]trusted operations[/green]: {len(result.added)} added, "
        f"{len(result.unchanged)} already present",
        highlight=False,
    )
    if stored > settings.trusted_operations_max:
        console.print(
            f"[yellow]warning[/yellow]: {stored} trusted operations are stored, more than "
            f"TRUSTED_OPERATIONS_MAX ({settings.trusted_operations_max}): each gateway "
            "process loads only the oldest ones; remove some",
            highlight=False,
        )
    return 0


async def _list_operations(settings: Settings) -> list[PersistedOperation]:
    async with Sources.open(settings) as sources:
        return await persisted_operations.list_operations(db=sources.users.db)


def cmd_operations_list(_args: argparse.Namespace) -> int:
    """Print the trusted operations: id, type and name, one per line."""
    for operation in asyncio.run(_list_operations(_settings())):
        sys.stdout.write(f"{operation.id}\t{operation.type or '-'}\t{operation.name or '-'}\n")
    return 0


async def _remove_operations(settings: Settings, ids: Sequence[str]) -> int:
    async with Sources.open(settings) as sources:
        return await persisted_operations.remove_operations(db=sources.users.db, ids=ids)


def cmd_operations_remove(args: argparse.Namespace) -> int:
    """Remove trusted operations by id (each process forgets them within
    TRUSTED_OPERATIONS_CACHE_SECONDS)."""
    ids = list(dict.fromkeys(args.ids))
    removed = asyncio.run(_remove_operations(_settings(), ids))
    console.print(f"removed {removed} of {len(ids)} operations", highlight=False)
    return 0 if removed == len(ids) else 1


def cmd_schema_print(args: argparse.Namespace) -> int:
    """Print the schema in SDL (schema.graphql); with --federation, the Apollo Federation 2
    subgraph SDL (schema.federation.graphql)."""
    from schema import build_schema  # noqa: PLC0415 - only this command needs it

    schema = build_schema(federation=args.federation)
    sdl = schema.subgraph_sdl if schema.subgraph_sdl is not None else schema.as_str() + "\n"
    sys.stdout.write(sdl)
    return 0


def cmd_schema_check(args: argparse.Namespace) -> int:
    """Compare two SDL files: list breaking and dangerous changes; exit 1 on a breaking one."""
    from gateway.schema_check import SchemaUnreadable, compare  # noqa: PLC0415

    try:
        changes = compare(Path(args.old).read_text(), Path(args.new).read_text())
    except (OSError, SchemaUnreadable) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        return 2
    for line in changes.lines():
        sys.stdout.write(line + "\n")
    if changes.breaking:
        console.print(
            f"[red]{len(changes.breaking)} breaking change(s)[/red] from {escape(args.old)} "
            f"to {escape(args.new)}",
            highlight=False,
        )
        return 1
    console.print(f"no breaking change ({len(changes.dangerous)} dangerous)", highlight=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded databases, seed them once, and serve with GraphiQL."""
    from gateway.demo import run_demo  # noqa: PLC0415 - keeps the embedded server out of serve

    return run_demo(host=args.host, port=args.port, data_dir=Path(args.data_dir))


def _add_schema_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """`gateway schema print` and `gateway schema check`."""
    schema = commands.add_parser("schema", help="Schema tools.")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True)
    print_schema = schema_commands.add_parser("print", help=cmd_schema_print.__doc__)
    print_schema.add_argument(
        "--federation",
        action="store_true",
        help="the Apollo Federation 2 subgraph SDL (what `_service { sdl }` answers)",
    )
    print_schema.set_defaults(handler=cmd_schema_print)
    check_schema = schema_commands.add_parser("check", help=cmd_schema_check.__doc__)
    check_schema.add_argument("old", help="the SDL clients were written against")
    check_schema.add_argument("new", help="the SDL to be served")
    check_schema.set_defaults(handler=cmd_schema_check)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (each has its own pools, breakers and bulkheads)",
    )
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default=".gateway-demo")
    demo.set_defaults(handler=cmd_demo)

    add_migrate_commands(commands).set_defaults(handler=cmd_migrate)

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
    for name, handler in (("promote", cmd_accounts_promote), ("demote", cmd_accounts_demote)):
        role = accounts_commands.add_parser(name, help=handler.__doc__)
        role.add_argument("email")
        role.set_defaults(handler=handler)

    credentials = commands.add_parser("credentials", help="Broker credentials maintenance.")
    credentials_commands = credentials.add_subparsers(dest="credentials_command", required=True)
    rotate = credentials_commands.add_parser("rotate", help=cmd_credentials_rotate.__doc__)
    rotate.set_defaults(handler=cmd_credentials_rotate)

    operations = commands.add_parser(
        "operations", help="Trusted operations (README, Persisted operations)."
    )
    operations_commands = operations.add_subparsers(dest="operations_command", required=True)
    add = operations_commands.add_parser("add", help=cmd_operations_add.__doc__)
    add.add_argument("manifests", nargs="+", metavar="MANIFEST")
    add.set_defaults(handler=cmd_operations_add)
    listing = operations_commands.add_parser("list", help=cmd_operations_list.__doc__)
    listing.set_defaults(handler=cmd_operations_list)
    remove = operations_commands.add_parser("remove", help=cmd_operations_remove.__doc__)
    remove.add_argument("ids", nargs="+", metavar="ID")
    remove.set_defaults(handler=cmd_operations_remove)

    _add_schema_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
