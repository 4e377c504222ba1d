"""TCP proxies on the loopback that add a fixed latency per round trip, in their own process.

    .venv/bin/python -m bench.latency --round-trip-ms 2 127.0.0.1:5432 127.0.0.1:27017

One `tests/faults.py` FaultProxy per target, each holding every chunk for half the round
trip in each direction. Prints `{"ports": [...]}` (one per target, in order) once they all
listen, then runs until SIGTERM or until its standard input closes. `bench.dashboard`
starts it as a child, so the proxies' CPU is charged to none of the timed variants.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from tests.faults import FaultProxy


def parse_target(text: str) -> tuple[str, int]:
    """`host:port` as a (host, port) pair."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    return host, int(port)


async def serve(targets: list[tuple[str, int]], round_trip_ms: float) -> None:
    proxies = [FaultProxy(host, port) for host, port in targets]
    for proxy in proxies:
        await proxy.__aenter__()
        await proxy.set("pass", latency=round_trip_ms / 2000)
    print(json.dumps({"ports": [proxy.port for proxy in proxies]}), flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    # The parent going away closes our stdin: stop then too.
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 4096):
            done.set()

    loop.add_reader(stdin, on_stdin)
    try:
        await done.wait()
    finally:
        for proxy in proxies:
            await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--round-trip-ms", type=float, required=True)
    parser.add_argument("targets", nargs="+", type=parse_target, metavar="HOST:PORT")
    args = parser.parse_args(argv)
    import uvloop  # noqa: PLC0415 - as the gateway runs; only this process needs it

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.targets, args.round_trip_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
