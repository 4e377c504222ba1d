"""Tell the request in progress (gateway.core.telemetry) which operation ran and how it
ended: its metrics, its span and its log line are named by them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gateway.core.telemetry import current_request


class ObservedOperation(SchemaExtension):
    """Reports the operation's name, type and outcome once it has run."""

    def on_operation(self) -> Iterator[None]:
        yield
        info = current_request()
        if info is None:
            return
        context = self.execution_context
        info.operation, info.operation_type = _operation(context)
        info.outcome = outcome(context.result)
        if info.keep_query:
            info.query = context.query


def _operation(context: ExecutionContext) -> tuple[str | None, str | None]:
    """The operation's name (None when anonymous) and type, as far as the document says."""
    if context.graphql_document is None:  # it did not parse
        return None, None
    try:
        kind = context.operation_type.value
    except RuntimeError:  # no such operation in the document
        return None, None
    return context.operation_name, kind


class _Result(Protocol):
    @property
    def data(self) -> Any: ...
    @property
    def errors(self) -> Sequence[Any] | None: ...


def outcome(result: _Result | None) -> str:
    """`ok` (no error), `partial` (data and errors), `error` (errors and no data) or
    `invalid` (refused before execution: syntax, validation, variables)."""
    if result is None:
        return "error"
    if not result.errors:
        return "ok"
    if result.data is not None:
        return "partial"
    before_execution = all(
        not isinstance(error, GraphQLError) or error.path is None for error in result.errors
    )
    return "invalid" if before_execution else "error"
