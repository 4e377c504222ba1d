"""The client CPU of the dashboard's Mongo reads, per loader call and per raw driver command.

    .venv/bin/python -m bench.mongo_reads [--calls N] [--rounds R] [--profile]

Seeds the demo dataset as `bench.dashboard` does (PostgreSQL on 127.0.0.1:5432 or
`BENCH_POSTGRES_URL`; the embedded Mongo-wire server in a child process, or
`MONGO_BENCH_URI`), then times, on uvloop, each Mongo read a dashboard makes through a
fresh set of the gateway's loaders (the source boundary, the driver, the records), one
call at a time, and beside each the same command sent straight through PyMongo (a
`find`/`aggregate` and `to_list`, no boundary, no record): the driver's own share. The
variants alternate within each round; reported is this process's CPU per call (the
server's is not counted), the median of the rounds. `--profile` prints a cProfile of
the loader calls instead. See bench/README.md, "The Mongo read path".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING

from bench.dashboard import (
    Bench,
    drop_mongo_databases,
    postgres_databases,
    run_with_mongo,
    running,
    seed,
)
from datasources import Scope, Sources
from datasources.credentials import SECRET_FIELDS
from datasources.strategies import StrategyPageKey
from gateway.app import create_app

Read = Callable[[], Awaitable[Any]]


def loader_reads(sources: Sources, user_id: str) -> dict[str, Read]:
    """Each dashboard Mongo read, through a fresh set of its source's loaders."""

    scope = Scope(user_id=user_id)

    async def viewer() -> Any:
        return await sources.users.loaders(scope).by_id.load(user_id)

    async def counts() -> Any:
        return await sources.strategies.loaders(scope).counts.load(user_id)

    async def active() -> Any:
        key = StrategyPageKey(user_id=user_id, status="ACTIVE", first=10)
        return await sources.strategies.loaders(scope).page.load(key)

    async def credentials() -> Any:
        return await sources.credentials.loaders(scope).by_user.load(user_id)

    async def together() -> Any:
        # As a dashboard asks: one request's loaders, the four reads at once.
        users = sources.users.loaders(scope)
        strategies = sources.strategies.loaders(scope)
        credentials = sources.credentials.loaders(scope)
        key = StrategyPageKey(user_id=user_id, status="ACTIVE", first=10)
        return await asyncio.gather(
            users.by_id.load(user_id),
            strategies.counts.load(user_id),
            strategies.page.load(key),
            credentials.by_user.load(user_id),
        )

    return {
        "users.by_id": viewer,
        "strategies.counts": counts,
        "strategies.page": active,
        "credentials.by_user": credentials,
        "the four at once": together,
    }


def raw_reads(sources: Sources, user_id: str) -> dict[str, Read]:
    """The same commands straight through PyMongo: no boundary, no records."""
    owner = ObjectId(user_id)
    users = sources.users.db["users"]
    strategies = sources.strategies.db["strategies"]
    credentials = sources.credentials.db["credentials"]

    async def viewer() -> Any:
        return await users.find({"_id": {"$in": [owner]}}).to_list()

    async def counts() -> Any:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"userId": {"$in": [owner]}, "tombstone": {"$exists": False}}},
            {"$group": {"_id": {"user": "$userId", "status": "$status"}, "n": {"$sum": 1}}},
        ]
        return await (await strategies.aggregate(pipeline)).to_list()

    async def active() -> Any:
        query = {"userId": {"$in": [owner]}, "tombstone": {"$exists": False}, "status": "active"}
        cursor = strategies.find(query).sort([("userId", ASCENDING), ("_id", DESCENDING)])
        return await cursor.limit(11).to_list()

    async def configured() -> Any:
        flags = {
            f"has_{name}": {"$cond": [{"$ifNull": [f"${name}", False]}, True, False]}
            for name in SECRET_FIELDS
        }
        pipeline: list[dict[str, Any]] = [
            {"$match": {"userId": {"$in": [owner]}, "tombstone": {"$exists": False}}},
            {"$project": {"userId": 1, "broker": 1, "clientId": 1, "apiKeyHint": 1, **flags}},
        ]
        return await (await credentials.aggregate(pipeline)).to_list()

    async def together() -> Any:
        return await asyncio.gather(viewer(), counts(), active(), configured())

    return {
        "users.by_id": viewer,
        "strategies.counts": counts,
        "strategies.page": active,
        "credentials.by_user": configured,
        "the four at once": together,
    }


async def cpu_per_call(read: Read, calls: int) -> float:
    """This process's CPU per call of `read`, in microseconds."""
    started = time.process_time()
    for _ in range(calls):
        await read()
    return (time.process_time() - started) / calls * 1e6


async def measure(sources: Sources, user_id: str, calls: int, rounds: int) -> None:
    variants = {"loader": loader_reads(sources, user_id), "raw": raw_reads(sources, user_id)}
    for reads in variants.values():  # warm up: connections, caches
        for read in reads.values():
            for _ in range(20):
                await read()
    samples: dict[tuple[str, str], list[float]] = {}
    order = [(variant, name) for variant in variants for name in variants[variant]]
    shuffled = random.Random(11)
    for _ in range(rounds):
        shuffled.shuffle(order)  # so that drift in the machine's load hits all alike
        for variant, name in order:
            us = await cpu_per_call(variants[variant][name], calls)
            samples.setdefault((variant, name), []).append(us)
    print(
        f"{'CPU µs per call':<22}{'loader':>8}{'raw':>8}{'ratio':>8}   (median of {rounds} rounds)"
    )
    for name in variants["loader"]:
        loader = statistics.median(samples[("loader", name)])
        raw = statistics.median(samples[("raw", name)])
        print(f"{name:<22}{loader:>8.0f}{raw:>8.0f}{loader / raw:>8.2f}")


async def profile(sources: Sources, user_id: str, calls: int) -> None:
    reads = loader_reads(sources, user_id)
    reads.pop("the four at once")
    for read in reads.values():
        for _ in range(20):
            await read()
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(calls):
        for read in reads.values():
            await read()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    by_part: dict[str, float] = {}
    for (path, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        part = part_of(path, name)
        by_part[part] = by_part.get(part, 0.0) + row[2]
    total = sum(by_part.values())
    print(f"own time by part, µs per dashboard's four reads ({calls} x 4 calls, profiled):")
    for part, seconds in sorted(by_part.items(), key=lambda item: -item[1]):
        print(f"  {part:<28}{seconds / calls * 1e6:>8.0f}  {seconds / total:>6.1%}")
    stats.sort_stats("tottime").print_stats(50)
    print(out.getvalue())


def part_of(path: str, name: str) -> str:
    """Which library or layer a profiled function belongs to."""
    for marker in ("pymongo", "bson", "aiodataloader", "prometheus_client", "opentelemetry"):
        if f"/{marker}/" in path or f" {marker}." in name:
            return marker
    if "/asyncio/" in path:
        return "asyncio"
    for ours in ("datasources", "gateway", "bench"):
        if f"/{ours}/" in path:
            return ours
    return "builtins and other" if path.count("/") < 2 else path.rsplit("/", 2)[-2]


async def run(args: argparse.Namespace, mongo_base: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    async with contextlib.AsyncExitStack() as stack:
        trades_url, analytics_url = await stack.enter_async_context(postgres_databases(run_id))
        bench = Bench(run_id, mongo_base, trades_url, analytics_url)
        settings = bench.settings()
        stack.push_async_callback(drop_mongo_databases, settings)
        sources = await stack.enter_async_context(running(create_app(settings)))
        user_id, _ = await seed(sources, args.trades_per_strategy)
        if args.profile:
            await profile(sources, user_id, args.calls)
        else:
            await measure(sources, user_id, args.calls, args.rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mongo_reads", description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--trades-per-strategy", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    run_with_mongo(lambda mongo_base, _label: run(args, mongo_base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
