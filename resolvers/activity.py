"""Recording what happened to an account: sign-ins, strategy lifecycle changes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from datasources import analytics as analytics_source
from datasources import detached
from gateway.core.errors import GatewayError
from resolvers.context import Context

log = logging.getLogger("gateway.activity")


async def record_event(
    ctx: Context,
    user_id: str,
    kind: str,
    *,
    subject_id: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Append an activity event for `user_id`, best effort.

    Activity is a record of what happened, not a condition of it: the action
    stands even when the analytics database is down; the miss is logged.
    """
    try:
        # What happened is recorded even when the request has spent its deadline on it.
        with detached(ctx.sources.analytics.timeout):
            await ctx.sources.analytics.write(
                lambda conn: analytics_source.record_activity(
                    conn=conn, user_id=user_id, kind=kind, subject_id=subject_id, data=data
                )
            )
    except GatewayError:
        log.warning("could not record %s for user %s", kind, user_id)
