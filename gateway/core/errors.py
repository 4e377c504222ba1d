"""The gateway's exceptions, each carrying the GraphQL `extensions.code` it is reported under.

    GatewayError
    ├── Unauthenticated        UNAUTHENTICATED
    ├── Forbidden              FORBIDDEN
    ├── NotFound               NOT_FOUND
    ├── BadUserInput           BAD_USER_INPUT       (+ extensions.field)
    │   └── InvalidFields      one BAD_USER_INPUT per bad field, all in one answer
    ├── Conflict               CONFLICT             (+ extensions.field)
    ├── SourceUnavailable      SOURCE_UNAVAILABLE   (+ extensions.source)
    ├── RateLimited            RATE_LIMITED
    ├── QueryTooComplex        QUERY_TOO_COMPLEX
    ├── ResponseTooLarge       RESPONSE_TOO_LARGE   (+ extensions.limit, maximum)
    ├── RequestTimedOut        GATEWAY_TIMEOUT      (the whole request, past its deadline)
    ├── ShuttingDown           SHUTTING_DOWN        (cut at shutdown; retry elsewhere)
    ├── PersistedQueryNotFound PERSISTED_QUERY_NOT_FOUND   (send the query with its hash)
    ├── PersistedQueryMismatch PERSISTED_QUERY_HASH_MISMATCH
    ├── PersistedQueryNotSupported PERSISTED_QUERY_NOT_SUPPORTED
    ├── OperationNotTrusted    PERSISTED_QUERY_NOT_IN_LIST (PERSISTED_OPERATIONS=trusted)
    └── InternalError          INTERNAL

Anything raised during a request that is not a `GatewayError` is masked as
INTERNAL: its message, type and traceback go to the log, never to the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class GatewayError(Exception):
    """Raised for any failure a client may see; the base of every coded error."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {key: value for key, value in extensions.items() if value is not None}

    def as_extensions(self) -> dict[str, Any]:
        """The `extensions` object of the GraphQL error this exception becomes."""
        return {"code": self.code, **self.extensions}


class Unauthenticated(GatewayError):
    """Raised when a request has no valid access token, or its token was revoked."""

    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    """Raised when the viewer is known but may not perform the operation."""

    code = "FORBIDDEN"


class NotFound(GatewayError):
    """Raised when an object does not exist or is not the viewer's to see."""

    code = "NOT_FOUND"


class BadUserInput(GatewayError):
    """Raised when an argument is malformed or out of range; nothing was changed."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class InvalidFields(BadUserInput):
    """Raised when several fields of one request are invalid: each becomes its own
    BAD_USER_INPUT error naming its field (`extensions.field`), all in one answer; nothing
    was changed."""

    def __init__(self, errors: Sequence[BadUserInput]) -> None:
        super().__init__(" ".join(error.message for error in errors))
        self.errors = tuple(errors)


class Conflict(GatewayError):
    """Raised when a write collides with existing data, such as a taken email."""

    code = "CONFLICT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class SourceUnavailable(GatewayError):
    """Raised when a database cannot be reached or fails to answer in time."""

    code = "SOURCE_UNAVAILABLE"

    def __init__(self, source: str) -> None:
        super().__init__(f"The {source} source is unavailable.", source=source)
        self.source = source


class RateLimited(GatewayError):
    """Raised when a client has sent more requests than it is allowed."""

    code = "RATE_LIMITED"


class QueryTooComplex(GatewayError):
    """Raised when a query is deeper or larger than the gateway accepts."""

    code = "QUERY_TOO_COMPLEX"


class ResponseTooLarge(GatewayError):
    """Raised when an answer would hold more objects or bytes than one response may
    (MAX_RESPONSE_OBJECTS, MAX_RESPONSE_BYTES): execution stopped, no data is returned."""

    code = "RESPONSE_TOO_LARGE"


class RequestTimedOut(GatewayError):
    """Raised when a whole request outlived its deadline (REQUEST_TIMEOUT_SECONDS): it was
    stopped, and answered without data. A single slow source fails only its own fields
    (SOURCE_UNAVAILABLE) and does not lead here."""

    code = "GATEWAY_TIMEOUT"

    def __init__(self) -> None:
        super().__init__("The request took longer than its deadline and was stopped.")


class ShuttingDown(GatewayError):
    """Raised for a request still running when the gateway's shutdown grace ran out: it was
    stopped; the same request sent again reaches another instance."""

    code = "SHUTTING_DOWN"

    def __init__(self) -> None:
        super().__init__(
            "The gateway is shutting down and stopped this request; a mutation may have been "
            "applied in part. Send it again (a mutation with the same clientMutationId)."
        )


class PersistedQueryNotFound(GatewayError):
    """Raised when a request names a persisted query (by hash or id) the gateway does not
    hold; an Apollo client then sends the query with its hash. The message is the one
    Apollo's clients look for."""

    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class PersistedQueryMismatch(GatewayError):
    """Raised when a query arrives with a persisted-query hash that is not its SHA-256:
    it is neither run nor stored."""

    code = "PERSISTED_QUERY_HASH_MISMATCH"

    def __init__(self) -> None:
        super().__init__("The persistedQuery sha256Hash is not the SHA-256 of the query.")


class PersistedQueryNotSupported(GatewayError):
    """Raised for a persisted query while PERSISTED_OPERATIONS=off; Apollo's clients then
    stop sending hashes. The message is the one they look for."""

    code = "PERSISTED_QUERY_NOT_SUPPORTED"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotSupported")


class OperationNotTrusted(GatewayError):
    """Raised, before parsing, for a document that is not a trusted operation while
    PERSISTED_OPERATIONS=trusted (the code is Apollo Router's for its safelist)."""

    code = "PERSISTED_QUERY_NOT_IN_LIST"

    def __init__(self) -> None:
        super().__init__(
            "Only trusted operations are accepted here: send the id of one "
            "(`gateway operations add` registers them)."
        )


class InternalError(GatewayError):
    """Raised (or substituted) for an unexpected failure; its details stay in the log."""

    code = "INTERNAL"
