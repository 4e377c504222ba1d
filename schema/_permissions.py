"""Authorization declared on the schema: what each root field requires, and the aggregates
whose fields release data only once the viewer check has passed.

Every root field names one permission (tests/schema/test_authorization.py walks them):

- `AllowAnyone`: signing up and in, refreshing and signing out need no token;
- `IsSignedIn`: a valid access token whose user exists and has not revoked it;
- `IsAdmin`: the same, for an ADMIN (FORBIDDEN for anyone else);
- `HasAccessToken`: a valid token, without waiting for the revocation check: only for
  fields returning an `@aggregate` type, whose own fields run their reads alongside that
  check and each release their value only once it has passed (`ViewerChecked`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission
from strawberry.types.base import get_object_definition

from gateway.core.errors import Forbidden
from resolvers.context import ADMIN
from schema._base import Info

T = TypeVar("T", bound=type)


class AllowAnyone(BasePermission):
    """Admits every request, signed in or not."""

    message = ""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return True


class IsSignedIn(BasePermission):
    """Admits a request whose access token is valid and not revoked; UNAUTHENTICATED otherwise.

    The check runs once per request: every field waiting on it shares it.
    """

    message = "Sign in first."

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await info.context.viewer()
        return True


class IsAdmin(BasePermission):
    """Admits only a signed-in ADMIN; anyone else is FORBIDDEN (UNAUTHENTICATED without a token)."""

    message = "Only an ADMIN may read other users."

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = await info.context.viewer()
        return viewer.user.role == ADMIN

    def on_unauthorized(self) -> NoReturn:
        # A GatewayError, so the error is coded FORBIDDEN like every other refusal.
        raise Forbidden(self.message)


class HasAccessToken(BasePermission):
    """Admits a request with a valid access token at once (no I/O) and starts the revocation
    check without waiting for it. Only for fields returning an `@aggregate` type."""

    message = "Sign in first."

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.claims()
        info.context.start_viewer_check()
        return True


def _retrieve(done: asyncio.Future[Any]) -> None:
    # The read of a refused request is dropped; its outcome is retrieved so none is logged.
    if not done.cancelled():
        done.exception()


class ViewerChecked(FieldExtension):
    """Releases a field's value only once the viewer check has passed.

    The field's own read starts at once, alongside the check (no extra wait); under a
    revoked token the field is UNAUTHENTICATED and its value, or its error, is dropped.
    """

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        try:
            result = next_(source, info, **kwargs)
        except Exception:
            await info.context.viewer()  # a refused viewer hears only that it is refused
            raise
        if not inspect.isawaitable(result):
            await info.context.viewer()
            return result
        read = asyncio.ensure_future(result)
        try:
            await info.context.viewer()
        except asyncio.CancelledError:
            read.cancel()  # the request is gone: so is its read
            read.add_done_callback(_retrieve)
            raise
        except BaseException:
            read.add_done_callback(_retrieve)
            raise
        return await read


def aggregate(cls: T) -> T:
    """Make a Strawberry type (decorated below this) an aggregate: every field carries
    `ViewerChecked`, so data from several sources is read concurrently with the viewer
    check and released only after it.

        @aggregate
        @strawberry.type(description="...")
        class Dashboard: ...
    """
    definition = get_object_definition(cls, strict=True)
    for field in definition.fields:
        field.extensions.append(ViewerChecked())
    cls.__gateway_aggregate__ = True  # type: ignore[attr-defined]
    return cls


def is_aggregate(cls: type) -> bool:
    """Whether `cls` was declared with `@aggregate`."""
    return bool(getattr(cls, "__gateway_aggregate__", False))
