"""The embedded Mongo-wire server (SecantusDB) run as a child process, for the demo and tests.

The server is started with the interpreter's `-m secantus`, so the gateway never
imports it: it stays a development dependency (the `embedded` extra).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError


class EmbeddedMongoError(RuntimeError):
    """Raised when the embedded server is not installed or does not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """A SecantusDB server on 127.0.0.1, keeping its data in `storage` (or in memory)."""

    def __init__(self, storage: Path | None, *, port: int | None = None) -> None:
        self.storage = storage
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def uri(self, database: str) -> str:
        """The URI of one database on this server."""
        return f"mongodb://{self.host}:{self.port}/{database}"

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers a ping."""
        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedMongoError(
                "The embedded Mongo-wire server is not installed: "
                "pip install 'trading-gateway[embedded]'"
            )
        storage = ":memory:"
        if self.storage is not None:
            self.storage.mkdir(parents=True, exist_ok=True)
            storage = str(self.storage)
        command = [
            sys.executable, "-m", "secantus",
            "--host", self.host, "--port", str(self.port),
            "--storage-path", storage, "--log-level", "WARNING",
        ]  # fmt: skip
        # Its output goes to a file, never to an undrained pipe that would block it once full:
        # beside the data when there is some, else a temporary file.
        self._log = (
            (self.storage.parent / "embedded-mongo.log").open("a+b")
            if self.storage is not None
            else tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        )
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=subprocess.DEVNULL, stderr=self._log
        )
        self._wait_ready(timeout)

    def _tail_of_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, Any]]
        with MongoClient(self.uri("admin"), serverSelectionTimeoutMS=500) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    output = self._tail_of_log()
                    self.stop()
                    raise EmbeddedMongoError(f"the embedded server exited: {output}")
                try:
                    client.admin.command("ping")
                except PyMongoError:
                    time.sleep(0.1)
                else:
                    return
        self.stop()
        raise EmbeddedMongoError(f"the embedded server did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop the server (gracefully first), if it runs."""
        process, self._process = self._process, None
        log, self._log = self._log, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log is not None:
            log.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
