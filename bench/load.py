"""A closed-loop load test through `gateway serve`, with one source faulted for part of the run.

    .venv/bin/python -m bench.load                      # trades stalled 20 s, 16 clients
    .venv/bin/python -m bench.load --source strategies --fault refuse
    .venv/bin/python -m bench.load --gateway-root /tmp/gw-before --gateway-root . --rounds 2

Sets up its own databases (the embedded Mongo-wire server as a child process, or
MONGO_BENCH_URI; two PostgreSQL databases on BENCH_POSTGRES_URL, dropped at the end), seeds
the demo dataset (gateway.seed) and rolls it up, puts a TCP FaultProxy (tests/faults.py) in
front of each of the five sources, and starts `gateway serve` (one uvicorn worker) as a
process of its own, pointed through the proxies. `--gateway-root` runs the gateway of
another checkout of this repository (its code first on PYTHONPATH, this venv), so two
commits can be measured in one session against the same data; the bench itself always
runs this tree's code.

The load: N clients (default 16) over loopback, each sending its next request as soon as
the last one answered: the full `dashboard` (all five sources) or `me` (the users source
only). With `--mix random` (the default) every client draws each request, a dashboard with
probability `--dashboard-share` (default 0.5), so a slow dashboard holds up whoever drew
it; with `--mix split` that share of the clients sends only dashboards and the others only
`me`, so the `me` clients are never held up behind a dashboard. The run goes through phases:
warm-up (not reported), normal, the source faulted (stall, refuse or cut, at the proxy),
recovered. Every request is counted in the phase it started in. Per phase and query:
requests, throughput, p50 / p99 / max latency, requests answered with errors by
`extensions.code`, and requests with no answer within the client timeout (counted at that
timeout in the percentiles). Per phase: the gateway process's CPU seconds (from /proc),
and the connection attempts the faulted source's proxy saw. See bench/README.md.

Everything listens on and connects to 127.0.0.1 only; the proxies refuse anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.dashboard import (
    ADMIN_URL,
    DASHBOARD_QUERY,
    SOURCES,
    Bench,
    drop_mongo_databases,
    machine,
    postgres_databases,
)
from bench.served import process_cpu
from datasources import Sources
from datasources.analytics import refresh_daily_metrics
from gateway.core.crypto import SecretBox
from gateway.core.settings import Settings
from gateway.embedded import EmbeddedMongo, free_port
from gateway.seed import DEMO_EMAIL, DEMO_PASSWORD, seed_demo
from tests.faults import FaultProxy, Mode

ROOT = Path(__file__).resolve().parents[1]
ME_QUERY = "query Me { me { id email firstName lastName role } }"
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken }
}
"""
KINDS = ("dashboard", "me")
QUERIES = {"dashboard": ("Dashboard", DASHBOARD_QUERY), "me": ("Me", ME_QUERY)}
NO_ANSWER = "NO ANSWER"
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# --- what was measured ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One request: its query, the phase it started in, when (seconds from the start of the
    load) and how long it took; the error codes it answered with; whether it answered."""

    kind: str
    phase: str
    started: float
    elapsed: float
    codes: frozenset[str] = frozenset()
    answered: bool = True


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase as it ran: seconds from the start of the load, and what it cost."""

    name: str
    start: float
    end: float
    gateway_cpu: float = 0.0
    fault_connections: int = 0

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Row:
    """One phase and query: the figures of the report's table (milliseconds)."""

    phase: str
    kind: str
    requests: int
    rate: float
    p50: float
    p99: float
    max: float
    failed: int
    no_answer: int
    codes: dict[str, int]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between ranks; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(
    records: Iterable[Record], phases: Sequence[Phase], kinds: Sequence[str]
) -> list[Row]:
    """One row per phase and query, in the order given; records of other phases are left out.

    `failed` counts requests that answered with at least one error or not at all; `codes`
    counts, per code, the requests that carried it (a dashboard with three fields of a dead
    source counts once), no answer included as NO ANSWER.
    """
    grouped: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        grouped.setdefault((record.phase, record.kind), []).append(record)
    rows = []
    for phase in phases:
        for kind in kinds:
            found = grouped.get((phase.name, kind), [])
            latencies = [record.elapsed * 1000 for record in found]
            codes: Counter[str] = Counter()
            for record in found:
                codes.update(record.codes if record.answered else {NO_ANSWER})
            rows.append(
                Row(
                    phase=phase.name,
                    kind=kind,
                    requests=len(found),
                    rate=len(found) / phase.seconds if phase.seconds > 0 else 0.0,
                    p50=percentile(latencies, 50),
                    p99=percentile(latencies, 99),
                    max=max(latencies, default=0.0),
                    failed=sum(1 for record in found if record.codes or not record.answered),
                    no_answer=sum(1 for record in found if not record.answered),
                    codes=dict(codes.most_common()),
                )
            )
    return rows


@dataclass(frozen=True, slots=True)
class Recovery:
    """After the source came back (seconds after): the first whole answer of a query started
    then, and the start of the last failed one (None: there was none, or no whole one)."""

    first_whole: float | None
    last_failed: float | None


def recovery(records: Iterable[Record], restored: float, kind: str) -> Recovery:
    """How `kind` requests started after `restored` (seconds from the start) fared."""
    after = sorted(
        (record for record in records if record.kind == kind and record.started >= restored),
        key=lambda record: record.started,
    )
    whole = [r.started for r in after if r.answered and not r.codes]
    failed = [r.started for r in after if not r.answered or r.codes]
    return Recovery(
        first_whole=whole[0] - restored if whole else None,
        last_failed=failed[-1] - restored if failed else None,
    )


def codes_of(status: int, content: bytes) -> frozenset[str]:
    """The `extensions.code` of every error in a GraphQL answer; `HTTP <status>` for an
    answer that is not GraphQL JSON, `NO CODE` for an error without one."""
    try:
        body = json.loads(content)
    except ValueError:
        return frozenset({f"HTTP {status}"})
    if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
        return frozenset({f"HTTP {status}"})
    codes = set()
    for error in body.get("errors") or ():
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        codes.add(str(code) if code else "NO CODE")
    if status != 200 and not codes:
        codes.add(f"HTTP {status}")
    return frozenset(codes)


# --- the gateway as a process -----------------------------------------------------------


@dataclass
class Gateway:
    """`gateway serve` run from `root`, and where its output goes."""

    root: Path
    process: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def revision(root: Path) -> str:
    """The short commit of a checkout, `+` when its tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - git, our own arguments
            ["git", "-C", str(root), *args],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


def gateway_environment(
    root: Path, urls: dict[str, str], jwt_secret: str, extra: Sequence[str] = ()
) -> dict[str, str]:
    """This environment without any gateway setting of its own, pointed at `urls` (by source),
    with `root`'s code first on the path, plus the `NAME=VALUE` settings in `extra`. Nothing
    else is set: each tree runs with its own defaults (a setting a tree does not know, such
    as the breaker's before it existed, is ignored by it)."""
    names = {name.upper() for name in Settings.model_fields} | {"PYTHONPATH"}
    env = {name: value for name, value in os.environ.items() if name.upper() not in names}
    env.update(
        PYTHONPATH=str(root),
        GATEWAY_ENV="test",
        MONGO_USER_URI=urls["users"],
        MONGO_STRATEGY_URI=urls["strategies"],
        MONGO_CREDENTIALS_URI=urls["credentials"],
        TRADES_DATABASE_URL=urls["trades"],
        ANALYTICS_DATABASE_URL=urls["analytics"],
        JWT_SECRET=jwt_secret,
        GRAPHIQL="false",
    )
    for setting in extra:
        name, _, value = setting.partition("=")
        env[name.upper()] = value
    return env


def start_gateway(root: Path, env: dict[str, str], workdir: Path) -> Gateway:
    """`python -m gateway.cli serve` on a free loopback port; output to files, never to a pipe
    that could fill up, and run in an empty folder so no stray .env is read."""
    port = free_port()
    stderr_path = workdir / "gateway-stderr.log"
    command = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1"]
    with (workdir / "gateway-stdout.log").open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*command, "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=err,
        )
    return Gateway(root, process, f"http://127.0.0.1:{port}", stderr_path)


async def wait_until_healthy(gateway: Gateway) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if gateway.process.poll() is not None:
                raise SystemExit(f"gateway serve exited:\n{gateway.stderr()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"gateway serve did not come up in {STARTUP_SECONDS:.0f}s")


async def stop_gateway(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM, then SIGKILL after STOP_SECONDS; the seconds it took to exit."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
    return time.monotonic() - started


# --- the load ---------------------------------------------------------------------------


@dataclass
class Plan:
    """The phases to run (seconds each) and the fault of the middle one."""

    warmup: float
    normal: float
    faulted: float
    recovered: float
    source: str
    fault: Mode

    @property
    def fault_phase(self) -> str:
        return f"{self.source} {self.fault}"

    def phases(self) -> list[tuple[str, float]]:
        return [
            ("warm-up", self.warmup),
            ("normal", self.normal),
            (self.fault_phase, self.faulted),
            ("recovered", self.recovered),
        ]


@dataclass
class Load:
    """The clients, the phase they are in, and what they measured."""

    http: httpx.AsyncClient
    token: str
    gateway: Gateway
    origin: float = field(default_factory=time.perf_counter)
    phase: str = "warm-up"
    records: list[Record] = field(default_factory=list)
    stopping: bool = False

    async def client(self, choose: Callable[[], str]) -> None:
        """Send the query `choose` names, the next as soon as it answered, until stopped."""
        bodies = {
            kind: json.dumps({"query": query, "operationName": operation}).encode()
            for kind, (operation, query) in QUERIES.items()
        }
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        while not self.stopping:
            phase, kind = self.phase, choose()
            body = bodies[kind]
            started = time.perf_counter()
            answered, codes, refused = True, frozenset[str](), False
            try:
                response = await self.http.post("/graphql", content=body, headers=headers)
                codes = codes_of(response.status_code, response.content)
            except httpx.TimeoutException:
                answered = False
            except httpx.TransportError as error:
                codes, refused = frozenset({type(error).__name__}), True
                if self.gateway.process.poll() is not None:
                    self.stopping = True
            self.records.append(
                Record(
                    kind=kind,
                    phase=phase,
                    started=started - self.origin,
                    elapsed=time.perf_counter() - started,
                    codes=codes,
                    answered=answered,
                )
            )
            if refused:
                await asyncio.sleep(0.05)  # a gateway that refuses connections: do not spin

    async def drive(self, plan: Plan, proxy: FaultProxy) -> list[Phase]:
        """Switch phases on time, faulting the proxy for the middle one; the phases as run."""
        ran = []
        for name, seconds in plan.phases():
            self.phase = name
            if name == plan.fault_phase:
                await proxy.set(plan.fault)
            elif name == "recovered":
                await proxy.set("pass")
            start = time.perf_counter() - self.origin
            cpu, connections = process_cpu(self.gateway.process.pid), proxy.connections
            await asyncio.sleep(seconds)
            ran.append(
                Phase(
                    name=name,
                    start=start,
                    end=time.perf_counter() - self.origin,
                    gateway_cpu=process_cpu(self.gateway.process.pid) - cpu,
                    fault_connections=proxy.connections - connections,
                )
            )
        return ran


def client_kinds(clients: int, dashboard_share: float) -> list[str]:
    """Which query each client sends in the `split` mix: a fixed share of the clients send
    only dashboards, the others only `me` (at least one of each)."""
    dashboards = min(clients - 1, max(1, round(clients * dashboard_share)))
    return ["dashboard"] * dashboards + ["me"] * (clients - dashboards)


def choosers(mix: str, clients: int, dashboard_share: float) -> tuple[list[Callable[[], str]], str]:
    """What each client asks next, and a description. `split`: each client always sends the
    same query, so `me` clients are never held up behind a dashboard (how the gateway keeps
    requests that do not need the faulted source going). `random`: every client draws each
    request (a dashboard with probability `dashboard_share`, seeded), so a slow dashboard
    holds up whoever drew it, as with users who each load both pages."""
    if mix == "split":
        kinds = client_kinds(clients, dashboard_share)
        described = ", ".join(f"{n} {kind}" for kind, n in Counter(kinds).items())
        return [_always(kind) for kind in kinds], described
    draws = [_drawing(random.Random(index), dashboard_share) for index in range(clients)]
    return draws, f"{clients}, each drawing dashboard {dashboard_share:.0%} / me per request"


def _always(kind: str) -> Callable[[], str]:
    return lambda: kind


def _drawing(rng: random.Random, dashboard_share: float) -> Callable[[], str]:
    return lambda: "dashboard" if rng.random() < dashboard_share else "me"


# --- one run ----------------------------------------------------------------------------


@dataclass
class Run:
    """One gateway under the whole plan."""

    root: str
    revision: str
    plan: dict[str, Any]
    clients: str
    settings: list[str]
    phases: list[Phase]
    rows: list[Row]
    recovery: dict[str, Recovery]
    load_average: tuple[float, float, float]
    bench_cpu: float
    stop_seconds: float
    stderr: dict[str, int]


async def login(base_url: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        response = await http.post(
            "/graphql",
            json={"query": LOGIN, "variables": {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}},
        )
    body = response.json()
    if body.get("errors"):
        raise SystemExit(f"login failed: {body['errors']}")
    token: str = body["data"]["login"]["accessToken"]
    return token


async def check_whole(base_url: str, token: str) -> int:
    """One dashboard before the load, which must answer whole; its size in bytes."""
    operation, query = QUERIES["dashboard"]
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "operationName": operation},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    if body.get("errors") or not body["data"]["dashboard"]["recentTrades"]:
        raise SystemExit(f"the dashboard is not whole before the load: {body}")
    return len(response.content)


def stderr_summary(text: str) -> dict[str, int]:
    lines = text.splitlines()
    return {
        "lines": len(lines),
        "tracebacks": sum(1 for line in lines if line.startswith("Traceback")),
        "Lock is not acquired": text.count("Lock is not acquired"),
    }


async def run_once(
    root: Path, settings: Settings, plan: Plan, args: argparse.Namespace, workdir: Path
) -> Run:
    direct = {
        "users": settings.mongo_user_uri,
        "strategies": settings.mongo_strategy_uri,
        "credentials": settings.mongo_credentials_uri,
        "trades": settings.trades_database_url,
        "analytics": settings.analytics_database_url,
    }
    chosen, described = choosers(args.mix, args.clients, args.dashboard_share)
    async with contextlib.AsyncExitStack() as stack:
        proxies = {}
        for source, url in direct.items():
            proxies[source] = await stack.enter_async_context(FaultProxy.in_front_of(url))
        urls = {source: proxies[source].url_through(url) for source, url in direct.items()}
        secret = settings.jwt_secret.get_secret_value()
        env = gateway_environment(root, urls, secret, args.set)
        gateway = start_gateway(root, env, workdir)
        stop_seconds = 0.0
        try:
            await wait_until_healthy(gateway)
            token = await login(gateway.base_url)
            size = await check_whole(gateway.base_url, token)
            print(f"a whole dashboard: {size} bytes; loading…", file=sys.stderr)
            limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=None)
            timeout = httpx.Timeout(args.client_timeout)
            async with httpx.AsyncClient(
                base_url=gateway.base_url, timeout=timeout, limits=limits
            ) as http:
                load = Load(http, token, gateway)
                bench_cpu = time.process_time()
                clients = [asyncio.create_task(load.client(choose)) for choose in chosen]
                try:
                    phases = await load.drive(plan, proxies[plan.source])
                finally:
                    load.stopping = True
                    # Each client finishes its request in flight: at most the client timeout.
                    await asyncio.gather(*clients)
                bench_cpu = time.process_time() - bench_cpu
        finally:
            stop_seconds = await stop_gateway(gateway.process)
    reported = [phase for phase in phases if phase.name != "warm-up"]
    restored = next(phase.start for phase in phases if phase.name == "recovered")
    return Run(
        root=str(root),
        revision=revision(root),
        plan=asdict(plan),
        clients=described,
        settings=list(args.set),
        phases=reported,
        rows=summarize(load.records, reported, KINDS),
        recovery={kind: recovery(load.records, restored, kind) for kind in KINDS},
        load_average=os.getloadavg(),
        bench_cpu=bench_cpu,
        stop_seconds=stop_seconds,
        stderr=stderr_summary(gateway.stderr()),
    )


# --- the report -------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def report(run: Run, client_timeout: float) -> str:
    plan = run.plan
    clients = run.clients
    lines = [
        "",
        f"gateway {run.root} at {run.revision}: {plan['source']} {plan['fault']} for "
        f"{plan['faulted']:.0f} s after {plan['normal']:.0f} s normal, then "
        f"{plan['recovered']:.0f} s recovered; clients: {clients}; "
        f"client timeout {client_timeout:.0f} s"
        + (f"; settings {' '.join(run.settings)}" if run.settings else ""),
        "",
        f"{'phase':<18}{'query':<11}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'failed':>8}{'no answer':>11}  errors (requests by code)",
    ]
    for row in run.rows:
        codes = ", ".join(f"{code} {n}" for code, n in row.codes.items()) or "-"
        lines.append(
            f"{row.phase:<18}{row.kind:<11}{row.requests:>9}{row.rate:>8.1f}{_ms(row.p50):>9}"
            f"{_ms(row.p99):>9}{_ms(row.max):>9}{row.failed:>8}{row.no_answer:>11}  {codes}"
        )
    lines += [
        "",
        f"{'phase':<18}{'seconds':>8}{'gateway CPU s':>15}{'CPU ms/request':>16}"
        f"{plan['source'] + ' connection attempts':>32}",
    ]
    for phase in run.phases:
        requests = sum(row.requests for row in run.rows if row.phase == phase.name)
        per_request = phase.gateway_cpu * 1000 / requests if requests else 0.0
        lines.append(
            f"{phase.name:<18}{phase.seconds:>8.1f}{phase.gateway_cpu:>15.2f}"
            f"{per_request:>16.1f}{phase.fault_connections:>32}"
        )
    found = run.recovery
    lines += [
        "",
        "after the source came back: "
        + "; ".join(
            f"{kind}: first whole answer {_seconds(found[kind].first_whole)}, "
            f"last failed one started {_seconds(found[kind].last_failed)}"
            for kind in KINDS
        ),
        f"bench process CPU {run.bench_cpu:.1f} s; load average after "
        + " ".join(f"{load:.2f}" for load in run.load_average)
        + (
            f"; gateway still running {STOP_SECONDS:.0f} s after SIGTERM: killed"
            if run.stop_seconds >= STOP_SECONDS
            else f"; gateway stopped {run.stop_seconds:.1f} s after SIGTERM"
        )
        + "; its stderr: "
        + ", ".join(f"{name} {n}" for name, n in run.stderr.items()),
    ]
    return "\n".join(lines)


def comparison(runs: Sequence[Run]) -> str:
    """The ratios that survive a noisy machine: each figure during the fault over normal."""
    lines = [
        "",
        "fault / normal, per run: me req/s, dashboard req/s, dashboard p99; recovery",
    ]
    for run in runs:
        rows = {(row.phase, row.kind): row for row in run.rows}
        fault = f"{run.plan['source']} {run.plan['fault']}"

        def ratio(kind: str, attribute: str, rows: dict[tuple[str, str], Row] = rows) -> str:
            normal = getattr(rows[("normal", kind)], attribute)
            during = getattr(rows[(fault, kind)], attribute)  # noqa: B023 - read at once
            return f"x{during / normal:.2f}" if normal else "-"

        lines.append(
            f"{run.revision:<10}me {ratio('me', 'rate')}, dashboard {ratio('dashboard', 'rate')}"
            f", dashboard p99 {ratio('dashboard', 'p99')}; whole dashboard after "
            f"{_seconds(run.recovery['dashboard'].first_whole)}"
        )
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------


async def seed_databases(settings: Settings, trades_per_strategy: int) -> int:
    """Migrate, seed the demo data and roll it up, with this tree's code; the trade count."""
    started = time.perf_counter()
    sources = Sources.open(settings)
    try:
        await sources.migrate()
        summary = await seed_demo(
            sources,
            trades_per_strategy=trades_per_strategy,
            box=SecretBox.from_settings(settings),
        )
        await refresh_daily_metrics(
            trades_engine=sources.trades.engine, analytics_engine=sources.analytics.engine
        )
    finally:
        await sources.close()
    print(
        f"seeded {summary.users} users, {summary.strategies} strategies, "
        f"{summary.trades} trades in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return summary.trades


async def run(args: argparse.Namespace, mongo_base: str, mongo_label: str) -> list[Run]:
    run_id = uuid.uuid4().hex[:8]
    plan = Plan(
        warmup=args.warmup,
        normal=args.normal,
        faulted=args.fault_seconds,
        recovered=args.recovered,
        source=args.source,
        fault=args.fault,
    )
    roots: list[Path] = args.gateway_root
    info = machine()
    print(
        f"machine: {info['cpus']} CPUs, {info['cpu']}, {info['memory']}; {info['python']}; "
        f"mongo: {mongo_label}; load average before: "
        + " ".join(f"{load:.2f}" for load in os.getloadavg()),
        file=sys.stderr,
    )
    runs = []
    async with contextlib.AsyncExitStack() as stack:
        trades_url, analytics_url = await stack.enter_async_context(postgres_databases(run_id))
        settings = Bench(run_id, mongo_base, trades_url, analytics_url).settings()
        stack.push_async_callback(drop_mongo_databases, settings)
        await seed_databases(settings, args.trades_per_strategy)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-load-")))
        for round_number in range(args.rounds):
            for index, root in enumerate(roots):
                print(
                    f"round {round_number + 1}/{args.rounds}: {root} ({revision(root)})",
                    file=sys.stderr,
                )
                folder = workdir / f"{round_number}-{index}"
                folder.mkdir()
                result = await run_once(root, settings, plan, args, folder)
                print(report(result, args.client_timeout), flush=True)
                runs.append(result)
    if len(runs) > 1:
        print(comparison(runs))
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--dashboard-share",
        type=float,
        default=0.5,
        help="the share of clients that send `dashboard`; the others send `me`",
    )
    parser.add_argument(
        "--mix",
        choices=("split", "random"),
        default="random",
        help="split: each client sends one query; random: each draws every request",
    )
    parser.add_argument("--source", choices=SOURCES, default="trades", help="the source faulted")
    parser.add_argument("--fault", choices=("stall", "refuse", "cut"), default="stall")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not reported")
    parser.add_argument("--normal", type=float, default=15.0, help="seconds")
    parser.add_argument("--fault-seconds", type=float, default=20.0, help="seconds")
    parser.add_argument("--recovered", type=float, default=15.0, help="seconds")
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=15.0,
        help="seconds a client waits for an answer before counting it as none",
    )
    parser.add_argument(
        "--gateway-root",
        action="append",
        metavar="PATH",
        help="a checkout whose gateway to run (repeat to compare; default: this tree)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a gateway setting for the served gateway (e.g. SQL_POOL_SIZE=20); repeatable",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every root this many times, alternating"
    )
    parser.add_argument(
        "--trades-per-strategy", type=int, default=180, help="the demo user has 24 strategies"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every run's figures as JSON")
    args = parser.parse_args(argv)
    if args.clients < 2:
        parser.error("--clients must be at least 2 (one of each query)")
    if min(args.normal, args.fault_seconds, args.recovered) <= 0 or args.warmup < 0:
        parser.error("phases must last more than 0 seconds")
    for setting in args.set:
        if "=" not in setting or setting.partition("=")[0].lower() not in Settings.model_fields:
            parser.error(f"--set {setting}: not NAME=VALUE of a gateway setting")
    args.gateway_root = [Path(root).resolve() for root in args.gateway_root or [ROOT]]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for url in (ADMIN_URL, os.environ.get("MONGO_BENCH_URI", "mongodb://127.0.0.1")):
        if urlsplit(url).hostname not in LOOPBACK:
            parser.error(f"{url}: the load test runs on the loopback only")
    return args


def write_json(path: str, runs: Sequence[Run]) -> None:
    with Path(path).open("w", encoding="utf-8") as out:
        json.dump([asdict(result) for result in runs], out, indent=2)


def main(argv: list[str] | None = None) -> int:
    import uvloop  # noqa: PLC0415 - the gateway's own loop; only the bench needs it here

    args = parse_args(argv)
    server: EmbeddedMongo | None = None
    if uri := os.environ.get("MONGO_BENCH_URI"):
        mongo_base, label = uri, "MONGO_BENCH_URI"
    else:
        server = EmbeddedMongo(storage=None)
        server.start()
        mongo_base, label = f"mongodb://{server.host}:{server.port}", "embedded SecantusDB"
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runs = runner.run(run(args, mongo_base, label))
    finally:
        if server is not None:
            server.stop()
    if args.json:
        write_json(args.json, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
