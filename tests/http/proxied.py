"""The app with every source behind a TCP fault proxy of its own (tests/faults.py), so each
source can fail alone (the Mongo sources then do not share a client)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from datasources import Sources
from gateway.app import create_app
from gateway.core.settings import Settings
from tests.faults import FaultProxy

# Each source, and the setting that names its database.
URL_SETTINGS = {
    "users": "mongo_user_uri",
    "strategies": "mongo_strategy_uri",
    "credentials": "mongo_credentials_uri",
    "trades": "trades_database_url",
    "analytics": "analytics_database_url",
}


@dataclass
class Proxied:
    app: FastAPI
    proxies: dict[str, FaultProxy]

    @property
    def sources(self) -> Sources:
        opened: Sources = self.app.state.sources
        return opened


@contextlib.asynccontextmanager
async def proxied_app(settings: Settings, update: Mapping[str, object]) -> AsyncIterator[Proxied]:
    """The app, its lifespan running, with `update` applied to the settings and every
    source's database reached through a proxy of its own."""
    proxies: dict[str, FaultProxy] = {}
    changed = dict(update)
    async with contextlib.AsyncExitStack() as stack:
        for source, name in URL_SETTINGS.items():
            url = getattr(settings, name)
            proxies[source] = await stack.enter_async_context(FaultProxy.in_front_of(url))
            changed[name] = proxies[source].url_through(url)
        app = create_app(settings.model_copy(update=changed))
        async with app.router.lifespan_context(app):
            yield Proxied(app, proxies)


@contextlib.asynccontextmanager
async def client_of(proxied: Proxied) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the proxied app; every proxy passes traffic again afterwards."""
    transport = httpx.ASGITransport(app=proxied.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client
    for proxy in proxied.proxies.values():
        await proxy.set("pass")
