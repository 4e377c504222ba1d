"""The cost of the source boundary per call: a trivial source call, timed many times.

    .venv/bin/python -m bench.boundary [--calls N] [--rounds R] [--tracing] [--io]

A source whose method returns at once, so what is timed is the boundary alone: the
error mapping, the deadline (a task per call), the breaker, the bulkhead, the call log
of an observed request and, where the tree has it, the telemetry (metrics; a span per
call with --tracing, inside a request span as a traced request has). No database; with
--io the call waits one turn of the loop for its answer, as a driver's call waits for
its socket, so the boundary's wait for it (its deadline's timer) is timed too.
Runs on uvloop, as uvicorn does. Reports wall and CPU microseconds per call, best of
the rounds. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Iterator

import uvloop

from datasources import Deadlines, SourceBase, SourceLimits, observe


class TrivialSource(SourceBase):
    """Answers at once, or (`io`) on the loop's next turn."""

    name = "bench-trivial"
    io = False

    async def answer(self) -> int:
        if not self.io:
            return 1
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[int] = loop.create_future()
        loop.call_soon(answered.set_result, 1)
        return await answered


@contextlib.contextmanager
def traced_request(tracing: bool) -> Iterator[None]:
    if not tracing:
        yield
        return
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 - optional

    from gateway.core import telemetry  # noqa: PLC0415

    provider = TracerProvider()
    telemetry.enable_tracing(provider)
    with provider.get_tracer("bench").start_as_current_span("request"):
        yield
    telemetry.disable_tracing()


async def run(calls: int, rounds: int, tracing: bool, io: bool = False) -> tuple[float, float]:
    source = TrivialSource(limits=SourceLimits(deadlines=Deadlines.every(5.0)))
    source.io = io
    best_wall = best_cpu = float("inf")
    with traced_request(tracing), observe():
        for _ in range(100):
            await source.answer()
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                await source.answer()
            best_wall = min(best_wall, (time.perf_counter() - wall) / calls)
            best_cpu = min(best_cpu, (time.process_time() - cpu) / calls)
    return best_wall * 1e6, best_cpu * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.boundary", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tracing", action="store_true")
    parser.add_argument("--io", action="store_true", help="the call waits a turn of the loop")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        wall, cpu = runner.run(run(args.calls, args.rounds, args.tracing, args.io))
    print(f"source boundary: {wall:.1f} us wall, {cpu:.1f} us CPU per call (best of {args.rounds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
