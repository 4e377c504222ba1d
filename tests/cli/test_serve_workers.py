"""`gateway serve`'s worker count: one per available CPU in production, else one; and the
warning when several workers would each keep the rate limits to themselves."""

from __future__ import annotations

import argparse
import base64
import os
from typing import Any

import pytest
import uvicorn

from gateway import cli
from gateway.core.settings import Settings

PRODUCTION = {
    "GATEWAY_ENV": "production",
    "JWT_SECRET": "a-production-secret-" + "p" * 32,
    "CREDENTIALS_ENCRYPTION_KEYS": "prod:" + base64.b64encode(b"p" * 32).decode(),
}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def production(**values: Any) -> Settings:
    return settings(
        gateway_env="production",
        jwt_secret=PRODUCTION["JWT_SECRET"],
        credentials_encryption_keys=PRODUCTION["CREDENTIALS_ENCRYPTION_KEYS"],
        **values,
    )


@pytest.fixture
def served(monkeypatch, tmp_path) -> dict[str, Any]:
    """What `gateway serve` hands uvicorn, with uvicorn itself replaced by a spy."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("METRICS_ENABLED", "false")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return seen


def serve(workers: int | None = None) -> int:
    return cli.cmd_serve(
        argparse.Namespace(workers=workers, host="127.0.0.1", port=0, log_level="info")
    )


def test_outside_production_one_worker_is_the_default():
    assert cli.default_workers(settings(gateway_env="development")) == 1
    assert cli.default_workers(settings(gateway_env="test")) == 1


def test_in_production_the_default_is_one_worker_per_cpu_the_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)

    assert cli.default_workers(production()) == 3


def test_without_cpu_affinity_the_default_counts_every_cpu(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)

    assert cli.default_workers(production()) == 6


def test_serve_in_production_runs_the_default_number_of_workers(served, monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)

    assert serve() == 0

    assert served["workers"] == 4


def test_an_explicit_worker_count_wins_in_production(served, monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)

    assert serve(workers=1) == 0

    assert served["workers"] == 1


def test_several_workers_without_redis_warn_that_each_limits_on_its_own(
    served, monkeypatch, capsys
):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "true")

    assert serve(workers=2) == 0

    warning = " ".join(capsys.readouterr().err.split())
    assert "2 workers and no REDIS_URL" in warning
    assert "up to 2 times every rate" in warning
    assert served["workers"] == 2


@pytest.mark.parametrize(
    ("workers", "values"),
    [
        (1, {}),
        (4, {"redis_url": "redis://127.0.0.1:6379/0"}),
        (4, {"rate_limit_enabled": False}),
    ],
    ids=["one worker", "limits shared through Redis", "limits off"],
)
def test_nothing_to_warn_about(workers, values):
    assert cli.shared_state_warnings(settings(**values), workers) == []


def test_the_warning_names_the_worker_count():
    (warning,) = cli.shared_state_warnings(production(), 8)

    assert "8 workers and no REDIS_URL" in warning
    assert "REDIS_URL" in warning
