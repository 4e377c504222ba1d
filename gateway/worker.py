"""The app factory `gateway serve` hands uvicorn by name (`factory=True`), so that each
worker process builds its own app, sources, breakers and pools.

It is a module of its own, importing nothing heavy, so that the worker imports the app's
modules here, with Python's cyclic garbage collector paused: each collection pass during
the imports walks every object made so far and frees next to nothing, a tenth of the
start's CPU. Once the app is built, what the imports made is frozen (`gc.freeze`: kept out
of every later collection, as it lives as long as the process) and the collector resumes,
so requests never pay for walking the modules' objects either.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def app_from_environment() -> FastAPI:
    """The app with settings from the environment, draining its requests on SIGTERM."""
    gc.disable()
    try:
        from gateway.app import create_app  # noqa: PLC0415 - imported with the collector paused
        from gateway.core.settings import Settings  # noqa: PLC0415

        app = create_app(Settings(), drain_on_signals=True)
        gc.freeze()
    finally:
        gc.enable()
    return app
