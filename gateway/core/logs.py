"""Log lines: one JSON object per line (or plain text), each tied to the request in progress.

    {"time": "2026-11-21T23:05:32.249Z", "level": "INFO", "logger": "gateway.access",
     "message": "POST /graphql 200", "pid": 4242, "request_id": "…", "trace_id": "…",
     "method": "POST", "path": "/graphql", "status": 200, "duration_ms": 8.1,
     "operation": "Dashboard", "operation_type": "query", "outcome": "ok"}

The request id and trace id are stamped on a record when it is made (`RequestFilter`), in
the task that logs it, so a line a source boundary logs carries the id of the request it
works for. What a line says is its message and the fields given as `extra={"fields": …}`:
nothing of a request's query text or variables is ever added here.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from gateway.core.telemetry import current_request

LogFormat = Literal["text", "json"]

_STANDARD = frozenset(vars(logging.makeLogRecord({})))


class RequestFilter(logging.Filter):
    """Stamps each record with the request id and trace id of the request in progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            info = current_request()
            record.request_id = info.request_id if info is not None else None
            record.trace_id = info.trace_id if info is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, pid, request_id and
    trace_id where known, the record's `fields`, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        for name in ("request_id", "trace_id"):
            if (value := getattr(record, name, None)) is not None:
                entry[name] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update((key, value) for key, value in fields.items() if key not in entry)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger [request id] message key=value…`, for reading by eye."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        if (request_id := getattr(record, "request_id", None)) is not None:
            name = f" {record.name} "
            line = line.replace(name, f"{name}[{request_id}] ", 1)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


def handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing `log_format` to `stream` (stderr), its records tied to their
    request."""
    written = logging.StreamHandler(stream)
    written.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    written.addFilter(RequestFilter())
    return written


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for a served gateway (uvicorn applies it in every
    worker): everything to stderr in `log_format` at `level`, uvicorn's loggers included."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestFilter}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            **{
                name: {"handlers": [], "level": level, "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            # PyMongo's debug logging writes whole commands and replies (emails, password
            # hashes): never below INFO, whatever the level asked for.
            "pymongo": {"level": level if level not in ("DEBUG", "NOTSET") else "INFO"},
        },
    }
