"""The per-request GraphQL context: the viewer, a fresh set of loaders, the shared sources."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from strawberry.fastapi import BaseContext

from datasources import Loaders, Scope, Sources
from datasources.users import UserRecord
from gateway.core.auth import AccessClaims, TokenService
from gateway.core.errors import Unauthenticated
from gateway.core.ratelimit import RequestLimits
from gateway.core.settings import Settings

ADMIN = "ADMIN"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user making the request."""

    user: UserRecord

    @property
    def id(self) -> str:
        """The viewer's user id."""
        return self.user.id


class Context(BaseContext):
    """What every resolver sees; built anew for each request."""

    def __init__(
        self,
        *,
        sources: Sources,
        tokens: TokenService,
        settings: Settings,
        authorization: str | Sequence[str] | None,
    ) -> None:
        super().__init__()
        self.sources = sources
        self.tokens = tokens
        self.settings = settings
        self._authorization = authorization
        self._claims: AccessClaims | None = None
        self._refused: Unauthenticated | None = None
        self._loaders: Loaders | None = None
        self._viewer: asyncio.Future[Viewer] | None = None
        # The request's rate limits and client IP (gateway/ratelimits.py); none by default.
        self.limits = RequestLimits(limiter=None, ip="unknown")

    def claims(self) -> AccessClaims:
        """The verified claims of the request's access token; UNAUTHENTICATED without one.

        Only the token itself is checked here (no I/O); `viewer()` also checks it
        was not revoked.
        """
        if self._refused is not None:
            raise self._refused
        if self._claims is None:
            token = _bearer_token(self._authorization)
            if token is None:
                raise Unauthenticated("Sign in first: send 'Authorization: Bearer <token>'.")
            self._claims = self.tokens.verify(token)
        return self._claims

    @property
    def loaders(self) -> Loaders:
        """The request's loaders, bound to the token's user as soon as the token verifies.

        So reads can start while `viewer()` checks the token was not revoked; every
        resolver returns data only once that check has passed.
        """
        if self._loaders is None:
            self._loaders = self.sources.loaders(Scope(user_id=self.claims().user_id))
        return self._loaders

    async def viewer(self) -> Viewer:
        """The authenticated viewer; UNAUTHENTICATED if the token is missing, bad or revoked.

        Checked once per request: concurrent resolvers share the same check.
        """
        return await asyncio.shield(self.start_viewer_check())

    @property
    def checked_viewer(self) -> Viewer:
        """The viewer, once the field's permission (`IsSignedIn`, `IsAdmin`) has checked it.

        Reading it before any check is a programming error, not a client's: every root
        field declares its permission (tests/schema/test_authorization.py).
        """
        if self._viewer is None or not self._viewer.done():
            raise RuntimeError("the viewer was read before a permission checked it")
        return self._viewer.result()

    def start_viewer_check(self) -> asyncio.Future[Viewer]:
        """Start checking the viewer now (once per request), without waiting for it."""
        if self._viewer is None:
            self._viewer = asyncio.ensure_future(self._authenticate())
            # Retrieved even when no field waits on it (each failed its own check first).
            self._viewer.add_done_callback(lambda done: done.cancelled() or done.exception())
        return self._viewer

    async def _authenticate(self) -> Viewer:
        claims = self.claims()
        user = await self.loaders.users.by_id.load(claims.user_id)
        if user is None or user.deleting or user.token_version != claims.token_version:
            self._refused = Unauthenticated("The access token has been revoked.")
            self._loaders = None
            raise self._refused
        if user.role == ADMIN:
            self._loaders = self._loaders_for(user)
        return Viewer(user=user)

    def _loaders_for(self, user: UserRecord) -> Loaders:
        # An ADMIN reads every user's rows; anyone else only their own.
        loaders = self.sources.loaders(Scope(user_id=None if user.role == ADMIN else user.id))
        loaders.users.by_id.prime(user.id, user)
        return loaders

    def _set_viewer(self, user: UserRecord) -> Viewer:
        viewer = Viewer(user=user)
        future: asyncio.Future[Viewer] = asyncio.get_running_loop().create_future()
        future.set_result(viewer)
        self._viewer = future
        return viewer

    def sign_in(self, user: UserRecord) -> Viewer:
        """Make `user` the viewer for the rest of this request (after register or login)."""
        self._loaders = self._loaders_for(user)
        return self._set_viewer(user)

    def sign_out(self, reason: Unauthenticated) -> None:
        """End the viewer for the rest of this request: later fields fail with `reason`."""
        future: asyncio.Future[Viewer] = asyncio.get_running_loop().create_future()
        future.set_exception(reason)
        future.add_done_callback(lambda done: done.exception())  # retrieved: no loop warning
        self._viewer = future
        self._refused = reason
        self._loaders = None

    def update_viewer(self, user: UserRecord) -> Viewer:
        """Replace the viewer's record after it changed it (profile, password), same loaders."""
        self.loaders.users.by_id.clear(user.id).prime(user.id, user)
        return self._set_viewer(user)


def _bearer_token(headers: str | Sequence[str] | None) -> str | None:
    if headers is None or isinstance(headers, str):
        header = headers
    elif len(headers) > 1:
        # Proxies and frameworks disagree on which one counts: neither does.
        raise Unauthenticated("Send one Authorization header, not several.")
    else:
        header = headers[0] if headers else None
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return token.strip()
