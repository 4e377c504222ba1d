"""The `gateway` command: serve, demo, migrate, analytics refresh, schema print and check,
operations, import."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

# Each command imports what it needs when it runs: `gateway serve` then loads the app's
# modules with the garbage collector paused (gateway/worker.py), and rich, the sources and
# the maintenance code stay out of a serving process (tests/unit/test_cold_start.py).
if TYPE_CHECKING:
    from rich.console import Console

    from datasources.analytics import RefreshResult
    from datasources.credentials import RotationResult
    from datasources.persisted_operations import PersistedOperation, SaveResult
    from datasources.users import UserRecord
    from gateway.core.settings import Settings
    from resolvers.deletion import SweepResult


# The app factory each worker runs, by name: it imports the app's modules itself.
WORKER_APP = "gateway.worker:app_from_environment"


@cache
def console() -> Console:
    """Where the commands write to a person: stderr, through rich."""
    from rich.console import Console  # noqa: PLC0415 - not on the serving path

    return Console(stderr=True)


def escape(text: str) -> str:
    """`text` with rich's markup escaped."""
    from rich.markup import escape as escape_markup  # noqa: PLC0415 - not on the serving path

    return escape_markup(text)


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError  # noqa: PLC0415 - see the imports above

    from gateway.core.settings import Settings  # noqa: PLC0415

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Only the messages: pydantic's own rendering echoes the input, secrets included.
        console().print("Invalid configuration:", style="red", markup=False)
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            console().print(
                f"  {where}: {error['msg']}", markup=False, highlight=False, soft_wrap=True
            )
        raise SystemExit(2) from exc


@contextmanager
def _progress(label: str, *, shown: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar's `on_progress(done, total)` callback; None when not on a terminal."""
    if not shown:
        yield None
        return
    from rich.progress import (  # noqa: PLC0415 - see the imports above
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console()
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


async def _refresh(settings: Settings, since: date | None, progress: bool) -> RefreshResult:
    from datasources import Sources  # noqa: PLC0415 - see the imports above
    from datasources.analytics import refresh_daily_metrics  # noqa: PLC0415

    async with Sources.open(settings) as sources:
        with _progress("rolling up trades", shown=progress) as advance:
            return await refresh_daily_metrics(
                trades_engine=sources.trades.engine,
                analytics_engine=sources.analytics.engine,
                since=since,
                on_progress=advance,
            )


async def _rotate(settings: Settings, progress: bool) -> RotationResult:
    from datasources import Sources  # noqa: PLC0415 - see the imports above
    from datasources.credentials import rotate_credentials  # noqa: PLC0415
    from gateway.core.crypto import SecretBox  # noqa: PLC0415

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
    from gateway.core import telemetry  # noqa: PLC0415 - see the imports above

    telemetry.prepare_multiprocess_dir(path)


def available_cpus() -> int:
    """The CPUs this process may run on: its CPU affinity where the system has one (a
    container or `taskset` may allow fewer than the machine has), else every CPU."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_workers(settings: Settings) -> int:
    """`gateway serve`'s worker processes when `--workers` is not given: one per available
    CPU in production, else one (a single process is easier to debug and to stop)."""
    return available_cpus() if settings.production else 1


def shared_state_warnings(settings: Settings, workers: int) -> list[str]:
    """What several workers do not share without Redis, and weakens: each a warning line.

    Per-process state that stays correct (metrics, caches of parsed documents, the
    trusted operations list, APQ queries) needs none: see README, "Several workers".
    """
    if workers < 2 or not settings.rate_limit_enabled or settings.redis_url:
        return []
    return [
        f"{workers} workers and no REDIS_URL: each worker keeps its own rate limits and "
        f"failed sign-in counts in memory, so together they admit up to {workers} times "
        "every rate and lock an account out only after as many times the failures. "
        "Set REDIS_URL to share them, or run --workers 1."
    ]


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway against the configured databases."""
    # Paused until the app is built (gateway/worker.py): the collector's passes over the
    # objects that importing makes are a tenth of the start's CPU, and find nothing to free.
    # One function, no helper: each frame below the serving loop shifts CPython 3.11's frame
    # stack chunks under every request (bench/README.md, "Cold start" under "Issue 11").
    gc.disable()
    try:
        import uvicorn  # noqa: PLC0415 - see the imports above

        from gateway.core import logs, telemetry  # noqa: PLC0415

        settings = _settings()
        workers = args.workers if args.workers is not None else default_workers(settings)
        if workers < 1:
            console().print("[red]--workers must be at least 1[/red]")
            return 2
        for warning in shared_state_warnings(settings, workers):
            console().print(f"[yellow]warning[/yellow]: {warning}", highlight=False)
        _share_metrics(workers)
        if settings.metrics_enabled and settings.metrics_port is not None:
            # Served by this process (the workers' supervisor when there are several).
            from prometheus_client import start_http_server  # noqa: PLC0415 - serve only

            start_http_server(
                settings.metrics_port,
                addr=settings.metrics_host,
                registry=telemetry.metrics_registry(),
            )
        if workers > 1:
            gc.enable()  # a supervisor: it builds no app, the workers do
        uvicorn.run(
            # By name, so that each worker builds its own app (and sources, breakers, pools);
            # each drains its requests on SIGTERM (gateway/app.py).
            WORKER_APP,
            factory=True,
            workers=workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            log_config=logs.logging_config(settings.log_format, args.log_level),
            # The app logs each request itself, with its request id (observability.py).
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
    finally:
        gc.enable()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring every source to its newest version; `status`, `history`, `down --to REV`
    (README, "Migrations")."""
    from gateway.migrate_cli import run_migrate  # noqa: PLC0415 - see the imports above

    return run_migrate(args, _settings())


def cmd_refresh(args: argparse.Namespace) -> int:
    """Roll trades up into daily_strategy_metrics."""
    result = asyncio.run(_refresh(_settings(), args.since, progress=console().is_terminal))
    console().print(
        f"[green]refreshed[/green]: {result.trades_read} trades read, "
        f"{result.rows_written} daily rows written"
        + (f" from {result.since.isoformat()}" if result.since else "")
    )
    return 0


async def _finish_deletions(settings: Settings) -> SweepResult:
    from datasources import Sources  # noqa: PLC0415 - see the imports above
    from resolvers.deletion import finish_deletions  # noqa: PLC0415

    async with Sources.open(settings) as sources:
        return await finish_deletions(sources, settle_seconds=settings.deletion_settle_seconds)


def cmd_finish_deletions(_args: argparse.Namespace) -> int:
    """Complete account deletions that were interrupted."""
    result = asyncio.run(_finish_deletions(_settings()))
    console().print(
        f"[green]deletions[/green]: {len(result.finished)} finished, "
        f"{len(result.failed)} pending, {len(result.settling)} settling"
    )
    for user_id in result.failed:
        console().print(f"  still pending: {user_id} (a source is unavailable; run again later)")
    for user_id in result.settling:
        console().print(
            f"  settling: {user_id} (every step done; it ends once DELETION_SETTLE_SECONDS "
            "have passed: run again then)"
        )
    return 1 if result.failed else 0


async def _set_role(settings: Settings, email: str, role: str) -> UserRecord | None:
    from datasources import Sources  # noqa: PLC0415 - see the imports above
    from datasources import users as users_source  # noqa: PLC0415

    async with Sources.open(settings) as sources:
        return await users_source.set_user_role(db=sources.users.db, email=email, role=role)


def _change_role(email: str, role: str) -> int:
    user = asyncio.run(_set_role(_settings(), email, role))
    if user is None:
        console().print(f"[red]no user with the email {escape(email)!r}[/red]", highlight=False)
        return 1
    # Read from the database on every request: the new role applies at once.
    console().print(f"[green]{role.lower()}[/green]: {escape(user.email)} is now {role}")
    return 0


def cmd_accounts_promote(args: argparse.Namespace) -> int:
    """Make the user with this email an ADMIN."""
    return _change_role(args.email, "ADMIN")


def cmd_accounts_demote(args: argparse.Namespace) -> int:
    """Make the user with this email an ordinary USER again."""
    return _change_role(args.email, "USER")


def cmd_credentials_rotate(_args: argparse.Namespace) -> int:
    """Re-encrypt every stored broker secret under the current key; safe to rerun."""
    result = asyncio.run(_rotate(_settings(), progress=console().is_terminal))
    console().print(
        f"[green]rotated[/green]: {result.secrets_rotated} secrets in "
        f"{result.documents_rotated} documents re-encrypted under key {result.kid!r} "
        f"({result.documents_checked} documents checked)",
        highlight=False,
    )
    if result.documents_skipped:
        console().print(
            f"[yellow]{result.documents_skipped} documents kept changing while rotating; "
            "run the command again[/yellow]"
        )
    if result.unreadable_secrets:
        shown = ", ".join(result.unreadable_user_ids[:50])
        more = len(result.unreadable_user_ids) - 50
        console().print(
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
    from gateway.persisted import ManifestError, parse_manifest  # noqa: PLC0415 - see above

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
        console().print("[red]refused; nothing was added[/red]:")
        for problem in problems[:50]:
            console().print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        if len(problems) > 50:
            console().print(f"  and {len(problems) - 50} more problems")
        return None
    return list(operations.values())


async def _save_operations(
    settings: Settings, operations: list[PersistedOperation]
) -> tuple[SaveResult, int]:
    """What saving did, and how many trusted operations are stored now."""
    from datasources import Sources, persisted_operations  # noqa: PLC0415 - see above

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
        console().print(
            "[red]refused; nothing was added[/red]: these ids are registered already with "
            "another body (remove them first): " + ", ".join(result.conflicts),
            highlight=False,
        )
        return 1
    console().print(
        f"[green]trusted operations[/green]: {len(result.added)} added, "
        f"{len(result.unchanged)} already present",
        highlight=False,
    )
    if stored > settings.trusted_operations_max:
        console().print(
            f"[yellow]warning[/yellow]: {stored} trusted operations are stored, more than "
            f"TRUSTED_OPERATIONS_MAX ({settings.trusted_operations_max}): each gateway "
            "process loads only the oldest ones; remove some",
            highlight=False,
        )
    return 0


async def _list_operations(settings: Settings) -> list[PersistedOperation]:
    from datasources import Sources, persisted_operations  # noqa: PLC0415 - see above

    async with Sources.open(settings) as sources:
        return await persisted_operations.list_operations(db=sources.users.db)


def cmd_operations_list(_args: argparse.Namespace) -> int:
    """Print the trusted operations: id, type and name, one per line."""
    for operation in asyncio.run(_list_operations(_settings())):
        sys.stdout.write(f"{operation.id}\t{operation.type or '-'}\t{operation.name or '-'}\n")
    return 0


async def _remove_operations(settings: Settings, ids: Sequence[str]) -> int:
    from datasources import Sources, persisted_operations  # noqa: PLC0415 - see above

    async with Sources.open(settings) as sources:
        return await persisted_operations.remove_operations(db=sources.users.db, ids=ids)


def cmd_operations_remove(args: argparse.Namespace) -> int:
    """Remove trusted operations by id (each process forgets them within
    TRUSTED_OPERATIONS_CACHE_SECONDS)."""
    ids = list(dict.fromkeys(args.ids))
    removed = asyncio.run(_remove_operations(_settings(), ids))
    console().print(f"removed {removed} of {len(ids)} operations", highlight=False)
    return 0 if removed == len(ids) else 1


@contextmanager
def _phases(*, shown: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar per phase, `on_progress(phase, done, total)`; None when not on a
    terminal."""
    if not shown:
        yield None
        return
    from rich.progress import (  # noqa: PLC0415 - not on the serving path
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=None)
            bar.update(tasks[phase], completed=done, total=total)

        yield advance


def cmd_import_algo_runner(args: argparse.Namespace) -> int:
    """Move the single-database algo-runner platform (MongoDB algo_runner_db) into the
    users, strategies and credentials sources; safe to rerun, resumes where it stopped."""
    from datasources import Sources  # noqa: PLC0415 - see the imports above
    from gateway.core.crypto import SecretBox  # noqa: PLC0415
    from gateway.imports import algo_runner  # noqa: PLC0415 - only this command needs it

    if args.dry_run and args.clear_source:
        console().print("[red]--clear-source clears only after a real import: not with --dry-run")
        return 2
    if args.batch_size < 1:
        console().print("[red]--batch-size must be at least 1[/red]")
        return 2
    settings = _settings()
    options = algo_runner.ImportOptions(
        source_uri=args.source,
        dry_run=args.dry_run,
        clear_source=args.clear_source,
        batch_size=args.batch_size,
    )

    async def run() -> algo_runner.ImportReport:
        box = SecretBox.from_settings(settings)
        async with Sources.open(settings) as sources:
            with _phases(shown=console().is_terminal) as advance:
                return await algo_runner.import_algo_runner(
                    sources=sources, box=box, options=options, on_progress=advance
                )

    report = asyncio.run(run())
    lines = algo_runner.report_lines(report)
    return _import_ended(lines, dry_run=report.dry_run, ok=report.ok, what="legacy user")


def _import_ended(lines: Sequence[str], *, dry_run: bool, ok: bool, what: str) -> int:
    """Print an import's report and how it ended; its exit status (0: all imported and
    verified)."""
    for line in lines:
        console().print(line, markup=False, highlight=False, soft_wrap=True)
    if dry_run:
        console().print("[yellow]dry run[/yellow]: nothing was written")
    elif ok:
        console().print("[green]imported and verified[/green]")
    else:
        console().print(f"[red]not every {what} is imported and verified[/red]: see above")
    return 0 if ok else 1


def cmd_import_tradebaas(args: argparse.Namespace) -> int:
    """Move Tradebaas in: its user_strategies (PostgreSQL) into the strategies source and its
    SQLite trade history into the trades source; safe to rerun, resumes where it stopped."""
    from datasources import Sources  # noqa: PLC0415 - see the imports above
    from gateway.imports import tradebaas  # noqa: PLC0415 - only this command needs it

    if args.batch_size < 1:
        console().print("[red]--batch-size must be at least 1[/red]")
        return 2
    settings = _settings()
    options = tradebaas.ImportOptions(
        strategies_uri=args.strategies,
        trades_path=Path(args.trades),
        users_path=Path(args.users) if args.users else None,
        dry_run=args.dry_run,
        batch_size=args.batch_size,
    )

    async def run() -> tradebaas.ImportReport:
        async with Sources.open(settings) as sources:
            with _phases(shown=console().is_terminal) as advance:
                return await tradebaas.import_tradebaas(
                    sources=sources, options=options, on_progress=advance
                )

    try:
        report = asyncio.run(run())
    except tradebaas.TradebaasInputError as exc:
        console().print(f"[red]nothing imported[/red]: {escape(str(exc))}", soft_wrap=True)
        return 2
    lines = tradebaas.report_lines(report)
    return _import_ended(lines, dry_run=report.dry_run, ok=report.ok, what="Tradebaas row")


def _add_import_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """`gateway import algo-runner` and `gateway import tradebaas`."""
    importing = commands.add_parser("import", help="Move an existing platform's data in.")
    import_commands = importing.add_subparsers(dest="import_command", required=True)
    algo = import_commands.add_parser("algo-runner", help=cmd_import_algo_runner.__doc__)
    algo.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URI",
        help="the legacy MongoDB (mongodb://host/algo_runner_db)",
    )
    algo.add_argument(
        "--dry-run", action="store_true", help="report what it would do; write nothing"
    )
    algo.add_argument(
        "--clear-source",
        action="store_true",
        help="after verification, remove the moved fields from the legacy users it passed",
    )
    algo.add_argument("--batch-size", type=int, default=200, help="users per batch")
    algo.set_defaults(handler=cmd_import_algo_runner)
    tradebaas = import_commands.add_parser("tradebaas", help=cmd_import_tradebaas.__doc__)
    tradebaas.add_argument(
        "--strategies",
        required=True,
        metavar="URI",
        help="Tradebaas' PostgreSQL, holding user_strategies (postgresql://host/tradebaas)",
    )
    tradebaas.add_argument(
        "--trades", required=True, metavar="SQLITE_PATH", help="Tradebaas' SQLite trades file"
    )
    tradebaas.add_argument(
        "--users",
        metavar="MAPPING.csv",
        help="tradebaas_user_id,email (or ...,gateway_user_id); default: join on email",
    )
    tradebaas.add_argument(
        "--dry-run", action="store_true", help="report what it would do; write nothing"
    )
    tradebaas.add_argument("--batch-size", type=int, default=500, help="rows per batch")
    tradebaas.set_defaults(handler=cmd_import_tradebaas)


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
        console().print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        return 2
    for line in changes.lines():
        sys.stdout.write(line + "\n")
    if changes.breaking:
        console().print(
            f"[red]{len(changes.breaking)} breaking change(s)[/red] from {escape(args.old)} "
            f"to {escape(args.new)}",
            highlight=False,
        )
        return 1
    console().print(f"no breaking change ({len(changes.dangerous)} dangerous)", highlight=False)
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
        default=None,
        help="worker processes (each has its own pools, breakers and bulkheads); default: "
        "one per CPU this process may run on (its CPU affinity) when GATEWAY_ENV=production, "
        "else 1",
    )
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default=".gateway-demo")
    demo.set_defaults(handler=cmd_demo)

    from gateway.migrate_cli import add_migrate_commands  # noqa: PLC0415 - light: argparse only

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
    _add_import_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
