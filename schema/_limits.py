"""Rate limits declared on the schema: every root field names its bucket, next to its
permission, and is checked against it before its permission and its resolver run (so
before any source is asked, before any password is hashed).

    @limited(Bucket.AUTH)
    @strawberry.mutation(description="...", permission_classes=[AllowAnyone])
    async def login(...): ...

A signed-in caller (a valid access token) spends its user's calls; anyone else, their
client IP's. tests/schema/test_rate_limits.py walks the root fields: one without a
bucket fails it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from gateway.core.errors import Unauthenticated
from gateway.core.ratelimit import Bucket
from schema._base import Info

__all__ = ["Bucket", "RateLimit", "limited"]


class RateLimit(FieldExtension):
    """Spends one call of the field's bucket before anything else of the field runs."""

    def __init__(self, bucket: Bucket) -> None:
        super().__init__()
        self.bucket = bucket

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        context = info.context
        try:
            subject: str | None = f"user:{context.claims().user_id}"
        except Unauthenticated:
            subject = None  # the client IP's calls; the permission refuses it if need be
        await context.limits.check(self.bucket, info.field_name, subject)
        return await next_(source, info, **kwargs)


def limited(bucket: Bucket) -> Callable[[Any], Any]:
    """Declare a root field's bucket. Put it above `@strawberry.field`/`mutation`: the
    extension is appended after the permission's, so it runs first."""

    def declare(field: Any) -> Any:
        if not isinstance(field, StrawberryField):
            raise TypeError("@limited goes above @strawberry.field or @strawberry.mutation")
        field.extensions.append(RateLimit(bucket))
        return field

    return declare


def bucket_of(field: StrawberryField) -> Bucket | None:
    """The bucket a field declares, if any."""
    for extension in field.extensions:
        if isinstance(extension, RateLimit):
            return extension.bucket
    return None
