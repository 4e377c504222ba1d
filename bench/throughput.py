"""Dashboard throughput of served gateways with 1 and 2 workers, and of the Apollo peer.

    .venv/bin/python -m bench.throughput [--clients 8] [--seconds 15] [--rounds 1]

Sets up and seeds the databases as bench.dashboard does, then starts, each on the loopback:

- gateway-w1: `gateway serve --workers 1`;
- gateway-w2: `gateway serve --workers 2` (a supervisor and two worker processes);
- peer:       the Apollo Server 4 peer (one Node process), unless --without-peer.

Every answer is checked to be the same JSON once, then each server in turn gets `--clients`
closed-loop clients (each its own connection, sending the full dashboard as soon as its last
answer came) for a warm-up, then for `--seconds` or `--requests`, whichever ends first.
Reported per server: whole dashboards per second, p50 / p95 latency, and the CPU seconds of
the server's processes (the supervisor and every worker, from /proc) per whole dashboard and
whole dashboards per CPU-second; failed ones (any error, or no answer) apart, by code.
The rounds alternate the servers' order. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.dashboard import (
    Bench,
    Call,
    _ratio,
    describe,
    drop_mongo_databases,
    peer_env,
    postgres_databases,
    prepare_peer,
    run_with_mongo,
    running,
    same_answers,
    seed,
    served_call,
    served_env,
)
from bench.served import (
    Served,
    descendants,
    process_cpu,
    start_gateway,
    start_peer,
    stop,
    tree_cpu,
    wait_until_answering,
)
from gateway.app import create_app
from gateway.core.auth import TokenService

# A request slower than this counts as failed: the run stays bounded whatever a server does.
CLIENT_TIMEOUT = 30.0


@dataclass
class Measured:
    """One server's closed-loop phase: latencies, failures, and its processes' CPU seconds."""

    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    cpu: dict[int, float] = field(default_factory=dict)
    bench_cpu: float = 0.0
    mongo_cpu: float = 0.0
    load: str = ""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.failed

    def row(self) -> dict[str, float]:
        """The phase's figures. Only whole dashboards count as served: a failed one (often
        answered at once, by an open circuit breaker) would flatter the rates."""
        cpu = sum(self.cpu.values())
        whole = len(self.latencies)
        ordered = sorted(self.latencies) or [0.0]
        return {
            "requests": whole,
            "per_second": whole / self.seconds if self.seconds else 0.0,
            "p50": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "cpu_s": cpu,
            "cpu_ms": 1000 * cpu / whole if whole else 0.0,
            "per_cpu_second": whole / cpu if cpu else 0.0,
        }


def error_codes(body: bytes) -> list[str]:
    """The distinct `extensions.code`s of an answer's errors (with the source, for
    SOURCE_UNAVAILABLE), sorted; none for a whole answer."""
    if b'"errors"' not in body:
        return []
    codes = set()
    for error in json.loads(body).get("errors") or []:
        extensions = error.get("extensions") or {}
        source = extensions.get("source")
        codes.add(str(extensions.get("code")) + (f" ({source})" if source else ""))
    return sorted(codes)


async def closed_loop(
    calls: list[Call], *, seconds: float, requests: int, measured: Measured | None
) -> None:
    """Every call a client of its own, each sending its next request once the last one
    answered, until `seconds` have passed or `requests` were sent in all."""
    deadline = time.monotonic() + seconds
    sent = 0

    async def client(call: Call) -> None:
        nonlocal sent
        while time.monotonic() < deadline and sent < requests:
            sent += 1
            started = time.perf_counter()
            try:
                body = await asyncio.wait_for(call(), CLIENT_TIMEOUT)
                codes = error_codes(body)
            except (httpx.HTTPError, TimeoutError) as exc:
                codes = [type(exc).__name__]
            if measured is None:
                continue
            if codes:
                measured.failures[",".join(codes)] += 1
            else:
                measured.latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client(call) for call in calls))


def cpu_of(pids: Iterable[int]) -> float:
    """CPU seconds so far of these processes together."""
    return sum(process_cpu(pid) for pid in pids)


async def measure(
    server: Served, calls: list[Call], args: argparse.Namespace, mongo: set[int]
) -> Measured:
    """A warm-up, then the timed phase, charged the CPU the server's processes spent in it;
    the bench's own and the embedded Mongo server's (`mongo`: its processes) alongside."""
    await closed_loop(calls, seconds=args.warmup_seconds, requests=10**9, measured=None)
    measured = Measured(server.name, load=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    before, bench_before = tree_cpu(server.process.pid), time.process_time()
    mongo_before = cpu_of(mongo)
    started = time.perf_counter()
    await closed_loop(calls, seconds=args.seconds, requests=args.requests, measured=measured)
    measured.seconds = time.perf_counter() - started
    after = tree_cpu(server.process.pid)
    measured.bench_cpu = time.process_time() - bench_before
    measured.mongo_cpu = cpu_of(mongo) - mongo_before
    # A process that started or ended during the phase counts from zero or is lost: the
    # workers live as long as their supervisor, so neither happens unless one crashed.
    measured.cpu = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    return measured


def report(
    results: list[list[Measured]],
    info: dict[str, str],
    args: argparse.Namespace,
    logs: dict[str, str],
) -> str:
    lines = [
        "",
        f"machine: {info['cpus']} CPUs, {info['cpu']}, {info['memory']}; {info['python']}; "
        f"{info['postgres']}; mongo: {info['mongo']}; node: {info.get('node', 'not run')}; "
        f"load average before: {info['load']}",
        f"{args.clients} closed-loop clients ("
        + ("a new connection per request" if args.fresh else "a kept-alive connection each")
        + "), the full dashboard; "
        f"{args.warmup_seconds:g} s warm-up, then {args.seconds:g} s or {args.requests} "
        "requests per server and round",
    ]
    for index, round_ in enumerate(results, start=1):
        lines += [
            "",
            f"round {index}",
            f"{'server':<14}{'whole':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'CPU s':>8}{'CPU ms/req':>11}{'req/CPU-s':>10}{'failed':>8}  CPU per process (s)",
        ]
        rows = {}
        for measured in round_:
            row = rows[measured.name] = measured.row()
            split = ", ".join(f"{cpu:.1f}" for cpu in measured.cpu.values())
            lines.append(
                f"{measured.name:<14}{row['requests']:>9.0f}{row['per_second']:>8.1f}"
                f"{row['p50']:>9.1f}{row['p95']:>9.1f}{row['cpu_s']:>8.1f}{row['cpu_ms']:>11.2f}"
                f"{row['per_cpu_second']:>10.1f}{measured.failed:>8}  {split} "
                f"(bench {measured.bench_cpu:.1f}, mongo {measured.mongo_cpu:.1f}; "
                f"load {measured.load})"
            )
        pairs = [("gateway-w2", "gateway-w1"), ("gateway-w1", "peer"), ("gateway-w2", "peer")]
        for left, right in pairs:
            if left in rows and right in rows:
                a, b = rows[left], rows[right]
                lines.append(
                    f"{left + ' / ' + right + ':':<26}requests per second "
                    f"{_ratio(a['per_second'], b['per_second'])}, per CPU-second "
                    f"{_ratio(a['per_cpu_second'], b['per_cpu_second'])}, p50 "
                    f"{_ratio(a['p50'], b['p50'])}"
                )
    failed = [m for round_ in results for m in round_ if m.failures]
    if failed:
        lines += ["", "failed requests (a dashboard with errors, or no answer), by error code:"]
        for index, round_ in enumerate(results, start=1):
            for measured in round_:
                if measured.failures:
                    codes = ", ".join(f"{code} {n}" for code, n in measured.failures.most_common())
                    lines.append(f"round {index} {measured.name}: {codes}")
        lines += ["", "the end of each such server's stderr:"]
        for name in dict.fromkeys(m.name for m in failed):
            lines += [f"--- {name}", *logs.get(name, "").splitlines()[-15:]]
    lines.append(
        "(CPU: user + system time of the server's processes, the supervisor and every worker, "
        "from /proc; the bench's clients, the databases and the other servers not included; "
        "mongo: the embedded Mongo-wire server's CPU in the same phase)"
    )
    return "\n".join(lines)


async def run(args: argparse.Namespace, mongo_base: str, mongo_label: str) -> None:
    info = await describe(mongo_label)
    if not args.without_peer:
        info["node"] = prepare_peer()
    async with contextlib.AsyncExitStack() as stack:
        run_id = uuid.uuid4().hex[:8]
        trades_url, analytics_url = await stack.enter_async_context(postgres_databases(run_id))
        bench = Bench(run_id, mongo_base, trades_url, analytics_url)
        settings = bench.settings()
        stack.push_async_callback(drop_mongo_databases, settings)
        tokens = TokenService(settings)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-through-")))
        async with running(create_app(settings)) as sources:
            user_id, _ = await seed(sources, args.trades_per_strategy)
        token = tokens.issue(user_id=user_id, token_version=0).token

        servers = []
        for workers in args.workers:
            folder = workdir / f"w{workers}"
            folder.mkdir()
            servers.append(
                start_gateway(
                    served_env(settings), folder, workers=workers, name=f"gateway-w{workers}"
                )
            )
            stack.callback(stop, servers[-1].process)
        if not args.without_peer:
            servers.append(start_peer(peer_env(settings), workdir))
            stack.callback(stop, servers[-1].process)
        await asyncio.gather(*(wait_until_answering(server) for server in servers))
        # This process's other children: the embedded Mongo server (none with MONGO_BENCH_URI).
        served = {pid for server in servers for pid in tree_cpu(server.process.pid)}
        mongo = set(descendants(os.getpid())) - served

        # One connection per client, kept alive; or a new one for every request.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=int(not args.fresh))
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits)
            )
            for _ in range(args.clients)
        ]
        calls = {
            server.name: [
                served_call(client, server.url, token, operation_name=True) for client in clients
            ]
            for server in servers
        }
        first = servers[0].name
        answers = {name: await each[0]() for name, each in calls.items()}
        same_answers({"gateway": answers[first], **answers})
        print(f"answers agree: {', '.join(answers)}", file=sys.stderr)

        results = []
        for index in range(args.rounds):
            order = servers[index % len(servers) :] + servers[: index % len(servers)]
            round_ = []
            for server in order:
                print(f"round {index + 1}: {server.name}…", file=sys.stderr)
                round_.append(await measure(server, calls[server.name], args, mongo))
                if server.process.poll() is not None:
                    raise SystemExit(f"{server.name} exited:\n{server.stderr()[-3000:]}")
            results.append(sorted(round_, key=lambda m: [s.name for s in servers].index(m.name)))
        logs = {server.name: server.stderr() for server in servers}
    print(report(results, info, args, logs))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--seconds", type=float, default=15.0, help="timed phase, per server")
    parser.add_argument(
        "--requests", type=int, default=5000, help="at most this many requests per phase"
    )
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1, help="each runs every server once")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        metavar="N",
        help="one served gateway per value, with N workers",
    )
    parser.add_argument(
        "--trades-per-strategy", type=int, default=180, help="the demo user has 24 strategies"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="a new connection for every request (the kernel then hands each to a worker "
        "that is waiting; kept-alive connections stay with the worker that accepted them)",
    )
    parser.add_argument("--without-peer", action="store_true", help="no Node needed")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 0 < args.seconds <= 120 or args.rounds < 1:
        parser.error("--clients 1 to 64, --seconds above 0 and at most 120, --rounds 1 or more")
    if any(not 1 <= workers <= 16 for workers in args.workers):
        parser.error("--workers takes values from 1 to 16")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_with_mongo(functools.partial(run, args), args.loop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
