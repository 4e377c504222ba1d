"""What `gateway serve` does before its first answer: only what serving needs.

Each check runs in a fresh interpreter, since this one has imported everything already.
The figures behind these rules are in bench/README.md ("Cold start" under "Issue 11").
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

import pytest
import uvicorn
from fastapi.routing import APIRoute

from gateway import cli
from gateway.app import create_app
from gateway.core.settings import Settings
from tests.serving import gateway_env

# Modules a serving process must not import: the CLI's own (rich), the embedded server and
# demo (development only), Redis when no Redis is configured (gateway/core/redis_client.py),
# the OpenTelemetry SDK while tracing is off, the maintenance code of the other commands.
NOT_WHEN_SERVING = (
    "rich",
    "secantus",
    "gateway.embedded",
    "gateway.demo",
    "gateway.seed",
    "gateway.schema_check",
    "gateway.imports",
    "datasources.imported",
    "redis",
    "opentelemetry.sdk",
    "pydantic.v1",
)
# `gateway serve` imports the command first: that import must stay light, so that the
# app's modules are imported later, with the collector paused (gateway/worker.py).
NOT_BY_THE_COMMAND = (*NOT_WHEN_SERVING, "fastapi", "pydantic", "sqlalchemy", "datasources")


def run_python(code: str, **env: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter with only these gateway settings; its last line of
    output, as JSON."""
    environment = gateway_env(GATEWAY_ENV="test", JWT_SECRET="cold-start-" + "x" * 48, **env)
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout.decode().splitlines()[-1])
    return result


def loaded(prefixes: tuple[str, ...]) -> str:
    """Code printing which modules under `prefixes` are loaded, as JSON."""
    return (
        "print(json.dumps({'loaded': sorted(m for m in sys.modules "
        f"if any(m == p or m.startswith(p + '.') for p in {prefixes!r}))}}))"
    )


@pytest.mark.slow  # starts an interpreter
def test_the_serve_command_imports_nothing_of_the_app_before_uvicorn_starts():
    result = run_python("import json, sys\nimport gateway.cli\n" + loaded(NOT_BY_THE_COMMAND))

    assert result["loaded"] == []


@pytest.mark.slow  # starts an interpreter
def test_a_serving_worker_imports_only_what_serving_needs():
    code = (
        "import json, sys\nfrom gateway.worker import app_from_environment\n"
        "app_from_environment()\n" + loaded(NOT_WHEN_SERVING)
    )

    result = run_python(code, GRAPHIQL="true", METRICS_ENABLED="true", FEDERATION="true")

    assert result["loaded"] == []


@pytest.mark.slow  # starts an interpreter
def test_building_the_app_hashes_no_password():
    # An Argon2id hash is 0.15 s of CPU and 0.4 s of wall: never made at start (the hash an
    # unknown email is checked against is random bytes, gateway/core/auth.py).
    code = (
        "import json\nimport argon2._password_hasher as hasher\ncalls = []\n"
        "real = hasher.hash_secret\n"
        "hasher.hash_secret = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
        "from gateway.worker import app_from_environment\napp_from_environment()\n"
        "print(json.dumps({'hashed': len(calls)}))"
    )

    assert run_python(code) == {"hashed": 0}


@pytest.mark.slow  # starts an interpreter
def test_the_worker_resumes_the_collector_once_the_app_is_built_and_freezes_its_modules():
    code = (
        "import gc, json\nfrom gateway.worker import app_from_environment\n"
        "app_from_environment()\n"
        "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))"
    )

    result = run_python(code)

    assert result["enabled"] is True
    assert isinstance(result["frozen"], int)
    assert result["frozen"] > 0


def test_the_serve_command_resumes_the_collector_when_uvicorn_returns(monkeypatch):
    paused: list[bool] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: paused.append(not gc.isenabled()))
    monkeypatch.setenv("METRICS_ENABLED", "false")

    cli.cmd_serve(argparse.Namespace(workers=1, host="127.0.0.1", port=0, log_level="info"))

    assert paused == [True]  # paused while the one worker imports and builds the app
    assert gc.isenabled()


def test_no_route_has_parameters_or_a_response_model_for_fastapi_to_analyse():
    # FastAPI analyses each typed parameter and response model as the route is added: for a
    # plain `str` that walks every subclass of Mapping and Sequence loaded so far, a tenth of
    # a second of each start. Routes read their request and return their response instead.
    settings = Settings(_env_file=None, gateway_env="test", graphiql=True, metrics_enabled=True)
    app = create_app(settings)

    analysed = [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute)
        and (
            route.dependant.path_params
            or route.dependant.query_params
            or route.dependant.body_params
            or route.response_model is not None
        )
    ]

    assert analysed == []
