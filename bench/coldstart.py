"""Cold start: from starting `gateway serve` to its first answer.

For each tree (this one by default; `--tree LABEL=PATH` several times to compare trees,
e.g. an unpacked `git archive` of an earlier commit), interleaved start by start:

- **first answer**: the wall time from spawning `python -m gateway.cli serve` (one
  worker unless `--workers N`, `GATEWAY_ENV=test`, the settings `tests/serving.py` gives
  a served gateway) to the first 200 of `POST /graphql {"query":"{__typename}"}`, polled
  every 5 ms, and the CPU time of the server's processes at that moment (/proc);
- **import** and **app build**: in fresh interpreters, the CPU time (`time.process_time`)
  of `import gateway.app` alone, and of the two steps of `gateway serve` before uvicorn
  starts: `import gateway.cli`, then the app factory uvicorn is given (which imports the
  app's modules and calls `create_app`).

Prints the median of `--starts` starts of each (5 by default) and each tree's ratio to the
first. Needs PostgreSQL on BENCH_POSTGRES_URL (127.0.0.1:5432, trust auth for `postgres`)
and the embedded Mongo-wire server (or MONGO_BENCH_URI); makes its own databases and drops
them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.dashboard import (
    Bench,
    drop_mongo_databases,
    machine,
    postgres_databases,
    run_with_mongo,
)
from bench.served import process_cpu, stop
from datasources import Sources
from gateway.embedded import free_port
from tests.serving import settings_env

ROOT = Path(__file__).resolve().parents[1]
FIRST_ANSWER_SECONDS = 30.0
POLL_SECONDS = 0.005
PROBE = json.dumps({"query": "{__typename}"}).encode()

# Each run in a fresh interpreter: CPU seconds of each step, as JSON on stdout.
IMPORT_APP = """
import json, time
t0 = time.process_time()
import gateway.app
print(json.dumps({"import_app": time.process_time() - t0}))
"""
# What `gateway serve` (one worker) does before uvicorn starts: import the command, then
# call the factory uvicorn is given (gateway/worker.py; gateway/app.py before it existed).
SERVE_PATH = """
import importlib.util, json, time
t0 = time.process_time()
import gateway.cli
t1 = time.process_time()
if importlib.util.find_spec("gateway.worker") is not None:
    from gateway.worker import app_from_environment
else:
    from gateway.app import app_from_environment
app = app_from_environment()
t2 = time.process_time()
print(json.dumps({"import_cli": t1 - t0, "factory": t2 - t1}))
"""


@dataclass
class Tree:
    """A source tree to start the gateway from, and what its starts measured (seconds)."""

    label: str
    path: Path
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def median_ms(self, name: str) -> float:
        return statistics.median(self.samples[name]) * 1000


def tree_env(env: dict[str, str], tree: Tree) -> dict[str, str]:
    """`env` with `tree`'s code first on the path (before the editable install)."""
    return {**env, "PYTHONPATH": str(tree.path)}


def first_answer(port: int, process: subprocess.Popen[bytes]) -> None:
    """Poll until `POST /graphql {__typename}` answers 200; stop the run if it never does."""
    deadline = time.monotonic() + FIRST_ANSWER_SECONDS
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gateway serve exited with {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("POST", "/graphql", body=PROBE, headers=headers)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"gateway serve did not answer in {FIRST_ANSWER_SECONDS:.0f}s")


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def start_once(tree: Tree, env: dict[str, str], workdir: Path, workers: int) -> None:
    """One `gateway serve` start: wall time and server CPU (its workers' included) to its
    first answer."""
    port = free_port()
    command = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--workers", str(workers)]
    with (workdir / "stderr.log").open("ab") as err:
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, env=tree_env(env, tree), cwd=workdir, stdout=err, stderr=err
        )
    try:
        first_answer(port, process)
        tree.add("first_answer", time.monotonic() - started)
        pids = [process.pid, *descendants(process.pid)]
        tree.add("first_answer_cpu", sum(process_cpu(pid) for pid in pids))
    finally:
        stop(process)


def steps_once(tree: Tree, env: dict[str, str], workdir: Path) -> None:
    """Import and app-build CPU, each in a fresh interpreter."""
    for code in (IMPORT_APP, SERVE_PATH):
        done = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code],
            env=tree_env(env, tree),
            cwd=workdir,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{tree.label}: a step failed:\n{done.stderr.decode()[-3000:]}")
        for name, seconds in json.loads(done.stdout.splitlines()[-1]).items():
            tree.add(name, seconds)


ROWS = {
    "import_app": "import gateway.app, CPU",
    "import_cli": "serve path: import gateway.cli, CPU",
    "factory": "serve path: the app factory (imports, create_app), CPU",
    "first_answer_cpu": "serve to first answer, server CPU",
    "first_answer": "serve to first answer, wall",
}


def report(trees: list[Tree], args: argparse.Namespace, load: str) -> str:
    info = machine()
    lines = [
        f"cold start, median of {args.starts} starts per tree (ms), --workers {args.workers}; "
        f"load average at start {load}",
        f"machine: {info['cpus']} CPUs, {info['cpu']}, {info['memory']}, {info['python']}",
        "",
        "| ms (median) | " + " | ".join(tree.label for tree in trees) + " |",
        "|---" * (len(trees) + 1) + "|",
    ]
    base = trees[0]
    for name, title in ROWS.items():
        cells = []
        for tree in trees:
            cell = f"{tree.median_ms(name):.0f}"
            if tree is not base and base.median_ms(name):
                cell += f" (x{tree.median_ms(name) / base.median_ms(name):.2f})"
            cells.append(cell)
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def migrated(bench: Bench) -> None:
    async with Sources.open(bench.settings()) as sources:
        await sources.migrate()


async def run(args: argparse.Namespace, mongo_base: str, trees: list[Tree]) -> None:
    run_id = uuid.uuid4().hex[:8]
    async with postgres_databases(run_id) as (trades_url, analytics_url):
        bench = Bench(run_id, mongo_base, trades_url, analytics_url)
        settings = bench.settings()
        try:
            await migrated(bench)
            env = settings_env(settings)
            load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
            with tempfile.TemporaryDirectory(prefix="coldstart-") as folder:
                workdir = Path(folder)  # empty: no stray .env is read
                for tree in trees:  # warm the file cache and the bytecode of every tree
                    steps_once(Tree(tree.label, tree.path), env, workdir)
                for _ in range(args.starts):
                    for tree in trees:
                        await asyncio.to_thread(steps_once, tree, env, workdir)
                        await asyncio.to_thread(start_once, tree, env, workdir, args.workers)
            print(report(trees, args, load))
        finally:
            await drop_mongo_databases(settings)


def parse_tree(text: str) -> Tree:
    label, sep, path = text.partition("=")
    if not sep or not label or not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH to a source tree: {text}")
    return Tree(label, Path(path).resolve())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--starts", type=int, default=5, help="starts per tree")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway serve --workers (CPU: all of them)"
    )
    parser.add_argument(
        "--tree",
        type=parse_tree,
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a tree to start from (repeat to compare; ratios are to the first); "
        "default: this tree",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every sample as JSON")
    args = parser.parse_args(argv)
    if args.starts < 1 or args.workers < 1:
        parser.error("--starts and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trees = args.tree or [Tree("this tree", ROOT)]
    run_with_mongo(lambda mongo_base, _label: run(args, mongo_base, trees), loop="asyncio")
    if args.json:
        samples = {tree.label: tree.samples for tree in trees}
        Path(args.json).write_text(json.dumps(samples, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
