"""A TCP proxy between the gateway and one database, that can add latency, stall, cut or
refuse: faults injected on the wire, with the real driver and the real server.

    async with FaultProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/db"
        proxy.set("stall")      # accept, then forward nothing either way (a black hole)
        proxy.set("refuse")     # connections refused: nothing listens
        proxy.set("cut")        # every open connection reset, new ones reset at once
        proxy.set("pass", latency=0.02)   # forward, 20 ms added per chunk each way
        proxy.connections       # connection attempts seen so far

In front of a Mongo server (`in_front_of` a `mongodb://` URL) it also reads the wire
protocol's frames, so a fault can hit one command exactly:

        proxy.fail_command("insert", lose="answer")   # the next insert runs, its answer is lost
        proxy.fail_command("findAndModify", nth=2, lose="request")  # the 2nd never arrives
        proxy.commands          # the commands forwarded so far (not the driver's handshakes)

Only loopback addresses are proxied; everything runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

Mode = Literal["pass", "stall", "cut", "refuse"]
Lost = Literal["request", "answer"]
# The driver's own commands (handshakes, heartbeats, sessions): never a step of a request.
_DRIVER_COMMANDS = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "buildinfo", "buildInfo", "saslStart",
     "saslContinue", "endSessions", "getParameter"}
)  # fmt: skip
_OP_MSG = 2013
_DEFAULT_PORTS = {"mongodb": 27017, "postgresql+asyncpg": 5432, "postgresql": 5432}
_CHUNK = 64 * 1024


@dataclass
class _CommandFault:
    command: str
    nth: int
    lose: Lost
    seen: int = 0


def _command_name(frame: bytes) -> str | None:
    """The command an OP_MSG frame carries: the first key of its body document."""
    if len(frame) < 27 or int.from_bytes(frame[12:16], "little") != _OP_MSG or frame[20] != 0:
        return None
    end = frame.find(b"\x00", 26)
    return frame[26:end].decode(errors="replace") if end > 0 else None


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Set when the answer to the request just forwarded must be lost.
    lose_answer: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                transport = writer.transport
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    # SO_LINGER 0: the peer sees a reset, as when a link really breaks.
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                transport.abort()
        for task in self.tasks:
            task.cancel()


def url_via(url: str, port: int) -> str:
    """`url` with its server replaced by 127.0.0.1:`port` (a proxy). A Mongo URL then
    connects directly, so the driver keeps talking to the proxy rather than to the address
    the server advertises."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    server = f"127.0.0.1:{port}"
    query = parts.query
    if parts.scheme == "mongodb" and "directConnection" not in query:
        query = "&".join(filter(None, (query, "directConnection=true")))
    return parts._replace(
        netloc=f"{credentials}@{server}" if credentials else server, query=query
    ).geturl()


class FaultProxy:
    """A proxy on 127.0.0.1 in front of `host:port` (see the module docstring)."""

    def __init__(self, host: str, port: int, *, mongo: bool = False) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to loopback addresses")
        self.target = (host, port)
        self.mongo = mongo
        self.commands: list[str] = []
        self._command_fault: _CommandFault | None = None
        self.port = 0
        self.mode: Mode = "pass"
        self.latency = 0.0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @classmethod
    def in_front_of(cls, url: str) -> FaultProxy:
        """A proxy for the server a database URL names."""
        parts = urlsplit(url)
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or _DEFAULT_PORTS[parts.scheme],
            mongo=parts.scheme == "mongodb",
        )

    def url_through(self, url: str) -> str:
        """`url` with this proxy in place of its server (`url_via`)."""
        return url_via(url, self.port)

    async def __aenter__(self) -> Self:
        await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and reset every connection."""
        await self._stop_listening()
        self._abort_links()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _abort_links(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()

    async def set(self, mode: Mode, *, latency: float = 0.0) -> None:
        """Switch to `mode`: `cut` and `refuse` reset every open connection now; `refuse`
        also stops listening, and any other mode listens again on the same port. Leaving a
        stall resets the connections accepted during it (they never reached the server)."""
        self.mode, self.latency = mode, latency
        if mode == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()
            # Connections accepted while stalled were never joined to the server: black-holed
            # for good, as a real network leaves them. Reset, so their peers learn it now.
            for link in [link for link in self._links if link.server is None]:
                link.abort()
                self._links.discard(link)
        if mode in ("cut", "refuse"):
            self._abort_links()
        if mode == "refuse":
            await self._stop_listening()
        elif self._server is None:
            await self._listen()

    def fail_command(self, command: str, *, nth: int = 1, lose: Lost = "answer") -> None:
        """Fail the `nth` Mongo command named `command` from now on, once: with `lose=
        "request"` its connection is reset before it reaches the server; with "answer" the
        server runs it and the connection is reset instead of its answer."""
        if not self.mongo:
            raise ValueError("command faults need a proxy in front of a Mongo server")
        self._command_fault = _CommandFault(command, nth, lose)

    @property
    def command_fault_pending(self) -> bool:
        """Whether an armed command fault has not fired yet."""
        return self._command_fault is not None

    def _on_command(self, name: str | None) -> Lost | None:
        if name is None or name in _DRIVER_COMMANDS:
            return None
        self.commands.append(name)
        fault = self._command_fault
        if fault is None or fault.command != name:
            return None
        fault.seen += 1
        if fault.seen < fault.nth:
            return None
        self._command_fault = None
        return fault.lose

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(client=writer)
        if self.mode == "cut":
            link.abort()
            return
        self._links.add(link)
        if self.mode == "stall":
            return  # held open, never forwarded: the peer waits until it gives up
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            link.abort()
            self._links.discard(link)
            return
        link.server = upstream_writer
        requests = self._pipe_commands if self.mongo else self._pipe
        link.tasks = [
            asyncio.create_task(requests(link, reader, upstream_writer)),
            asyncio.create_task(self._pipe(link, upstream_reader, writer, answers=True)),
        ]

    async def _forward(self, sink: asyncio.StreamWriter, data: bytes) -> None:
        await self._flowing.wait()  # a link that stalls mid-stream stops forwarding
        if self.latency:
            await asyncio.sleep(self.latency)
        sink.write(data)
        await sink.drain()

    async def _pipe_commands(
        self, link: _Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        """Client to Mongo server, a whole frame at a time, each checked for a command fault."""
        try:
            while True:
                header = await source.readexactly(4)
                frame = header + await source.readexactly(int.from_bytes(header, "little") - 4)
                lost = self._on_command(_command_name(frame))
                if lost == "request":
                    return  # the link is reset (finally) before the request reaches the server
                link.lose_answer = lost == "answer"
                await self._forward(sink, frame)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            link.abort()
            self._links.discard(link)

    async def _pipe(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        answers: bool = False,
    ) -> None:
        try:
            while chunk := await source.read(_CHUNK):
                if answers and link.lose_answer:
                    return  # the server ran it; the link is reset (finally) instead of answering
                await self._forward(sink, chunk)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            link.abort()
            self._links.discard(link)
