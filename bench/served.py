"""Servers the dashboard bench runs as processes of their own, and what they cost.

- `gateway serve` (uvicorn, one worker unless told) and the Apollo Server 4 peer in `bench/peer/`
  (Node), each on a free loopback port, output to files, stopped with SIGTERM;
- the peer's packages, installed with `npm ci` when `node_modules` is missing or was
  installed from another lockfile (the bench's own step: the test suite never runs it);
- a process's CPU time from /proc, so a served variant is charged its server's CPU, not
  the bench's (with several workers: the supervisor's and every worker's);
- the latency proxies: `python -m bench.latency` in a process of its own, so the proxies'
  CPU is charged to nobody's variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.embedded import free_port

PEER_DIR = Path(__file__).resolve().parent / "peer"
# Written into node_modules after an install: the digest of the manifest and lockfile it
# was installed from.
INSTALL_STAMP = ".bench-installed"
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
PROBE = json.dumps({"query": "{ __typename }"}).encode()


# --- CPU time -------------------------------------------------------------------------


def cpu_seconds_of_stat(stat: str, ticks_per_second: int) -> float:
    """User + system CPU seconds from the text of /proc/PID/stat (every thread counted)."""
    # The command name (field 2) is in parentheses and may hold spaces or ')': count the
    # fields after its last ')'. utime and stime are fields 14 and 15.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def process_cpu(pid: int) -> float:
    """A process's user + system CPU seconds so far (Linux /proc); 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    return cpu_seconds_of_stat(stat, os.sysconf("SC_CLK_TCK"))


def parent_of_stat(stat: str) -> int:
    """The parent's pid from the text of /proc/PID/stat (field 4)."""
    return int(stat.rpartition(")")[2].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children…), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = parent_of_stat((entry / "stat").read_text(encoding="ascii"))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of `pid` and of every live process below it (a supervisor's
    workers), by pid."""
    return {each: process_cpu(each) for each in [pid, *descendants(pid)]}


# --- URLs -----------------------------------------------------------------------------


def node_postgres_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://…`) as node-postgres takes it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url}")
    return f"postgresql://{rest}"


# --- the peer's packages --------------------------------------------------------------


def lock_digest(peer_dir: Path) -> str:
    """The digest of the peer's manifest and lockfile: what an install was made from."""
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((peer_dir / name).read_bytes())
    return digest.hexdigest()


def needs_install(peer_dir: Path) -> bool:
    """Whether node_modules is missing, or was installed from another manifest or lockfile."""
    stamp = peer_dir / "node_modules" / INSTALL_STAMP
    try:
        return stamp.read_text(encoding="ascii").strip() != lock_digest(peer_dir)
    except OSError:
        return True


def install_peer(peer_dir: Path = PEER_DIR) -> None:
    """`npm ci` in `peer_dir` unless its node_modules matches its lockfile already."""
    if not needs_install(peer_dir):
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("the peer needs Node (20.19 or later) and npm on PATH")
    print(f"installing the peer's packages (npm ci in {peer_dir})…", file=sys.stderr)
    subprocess.run(  # noqa: S603 - npm from PATH, our own arguments
        [npm, "ci", "--prefix", str(peer_dir), "--no-audit", "--no-fund", "--loglevel=error"],
        check=True,
        stdout=sys.stderr,  # the report alone goes to stdout
    )
    (peer_dir / "node_modules" / INSTALL_STAMP).write_text(lock_digest(peer_dir) + "\n")


# --- processes ------------------------------------------------------------------------


@dataclass
class Served:
    """A server process, where it listens and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _spawn(
    name: str, command: list[str], env: Mapping[str, str], workdir: Path, url: str
) -> Served:
    stderr_path = workdir / f"{name}-stderr.log"
    with (workdir / f"{name}-stdout.log").open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603 - our own programs and arguments
            command, env=dict(env), cwd=workdir, stdout=out, stderr=err
        )
    return Served(name, process, url, stderr_path)


def start_gateway(
    env: Mapping[str, str], workdir: Path, *, workers: int = 1, name: str = "gateway"
) -> Served:
    """`gateway serve` (uvicorn, `workers` worker processes) on a free loopback port, run in
    an empty folder so no stray .env is read."""
    port = free_port()
    command = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--workers", str(workers)]
    return _spawn(name, command, env, workdir, f"http://127.0.0.1:{port}/graphql")


def start_peer(env: Mapping[str, str], workdir: Path, peer_dir: Path = PEER_DIR) -> Served:
    """The Apollo Server 4 peer on a free loopback port (NODE_ENV=production, as deployed)."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("the peer needs Node on PATH")
    port = free_port()
    env = {**env, "PEER_PORT": str(port), "NODE_ENV": "production"}
    command = [node, str(peer_dir / "server.mjs")]
    return _spawn("peer", command, env, workdir, f"http://127.0.0.1:{port}/")


async def wait_until_answering(served: Served) -> None:
    """Until a `{ __typename }` POST answers 200; stop the run if the process exits first."""
    deadline = time.monotonic() + STARTUP_SECONDS
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if served.process.poll() is not None:
                raise SystemExit(f"{served.name} exited:\n{served.stderr()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                response = await http.post(served.url, content=PROBE, headers=headers)
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"{served.name} did not answer in {STARTUP_SECONDS:.0f}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_SECONDS."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- latency proxies ------------------------------------------------------------------


@dataclass
class LatencyProxies:
    """`python -m bench.latency`: one proxy per target, each adding latency both ways."""

    process: subprocess.Popen[bytes]
    ports: list[int]


def start_latency_proxies(
    targets: list[tuple[str, int]], round_trip_ms: float, workdir: Path
) -> LatencyProxies:
    """Proxies in front of `targets` adding `round_trip_ms` per round trip (half each way),
    in a process of their own; returns once they listen."""
    command = [sys.executable, "-m", "bench.latency", "--round-trip-ms", str(round_trip_ms)]
    command += [f"{host}:{port}" for host, port in targets]
    err = (workdir / "latency-stderr.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.PIPE
    )
    err.close()
    assert process.stdout is not None  # noqa: S101 - piped above
    line = process.stdout.readline()
    if not line:
        process.wait()
        text = (workdir / "latency-stderr.log").read_text(errors="replace")
        raise SystemExit(f"the latency proxies did not start:\n{text[-3000:]}")
    return LatencyProxies(process, [int(port) for port in json.loads(line)["ports"]])
