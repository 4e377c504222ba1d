"""Settings refuse their development secrets in production, wherever they appear."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.core.settings import DEV_ENCRYPTION_KEYS, DEV_JWT_SECRET, Settings

STRONG = "s" * 48
PRODUCTION_KEY = "k2:" + base64.b64encode(b"p" * 32).decode()


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "_env_file": None,
        "gateway_env": "production",
        "jwt_secret": STRONG,
        "credentials_encryption_keys": PRODUCTION_KEY,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_production_settings_with_their_own_secrets_are_accepted():
    settings = production(jwt_previous_secret="p" * 40)

    assert settings.encryption_keys[0][0] == "k2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_secret": DEV_JWT_SECRET}, "JWT_SECRET must be set"),
        ({"jwt_secret": "short"}, "at least 32 characters"),
        ({"jwt_previous_secret": DEV_JWT_SECRET}, "JWT_PREVIOUS_SECRET"),
        ({"jwt_previous_secret": "short"}, "JWT_PREVIOUS_SECRET"),
        ({"credentials_encryption_keys": DEV_ENCRYPTION_KEYS}, "development key"),
        (
            {"credentials_encryption_keys": f"{PRODUCTION_KEY},{DEV_ENCRYPTION_KEYS}"},
            "development key",
        ),
        (
            {
                "credentials_encryption_keys": PRODUCTION_KEY.replace("k2:", "dev2:")
                + ","
                + DEV_ENCRYPTION_KEYS.replace("dev:", "other:")
            },
            "development key",
        ),
    ],
)
def test_production_refuses_a_development_or_weak_secret(overrides, message):
    with pytest.raises(ValidationError, match=message):
        production(**overrides)


def test_development_keeps_its_defaults():
    settings = Settings(_env_file=None)

    assert settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET


def test_source_deadlines_by_kind_with_per_source_overrides():
    settings = Settings(
        _env_file=None,
        source_lookup_timeout_seconds=1,
        source_aggregate_timeout_seconds=3,
        source_write_timeout_seconds=2,
        source_timeouts="trades.aggregate=7.5, analytics=4, analytics.bulk=90",
    )
    default = {"lookup": 1, "aggregate": 3, "write": 2, "bulk": 60}
    assert settings.source_deadlines("users") == default
    assert settings.source_deadlines("trades") == {**default, "aggregate": 7.5}
    # A whole source's override, then its kinds', whatever their order.
    assert settings.source_deadlines("analytics") == {
        "lookup": 4,
        "aggregate": 4,
        "write": 4,
        "bulk": 90,
    }


@pytest.mark.parametrize("value", ["trades", "trades=0", "trades.sum=2", "trades=1.2.3", "=4"])
def test_a_malformed_source_timeout_override_fails_at_start(value):
    with pytest.raises(ValueError, match="SOURCE_TIMEOUTS"):
        Settings(_env_file=None, source_timeouts=value)


def test_a_source_timeout_override_naming_no_source_fails_at_start():
    from datasources import Sources  # noqa: PLC0415

    with pytest.raises(ValueError, match="tradez"):
        Sources.open(Settings(_env_file=None, source_timeouts="tradez=9"))


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]

    assert missing == []


def test_production_switches_follow_the_environment_unless_set():
    production = Settings(_env_file=None, gateway_env="test").model_copy(
        update={"gateway_env": "production"}
    )
    development = Settings(_env_file=None)
    explicit = production.model_copy(
        update={"graphiql": True, "introspection": "on", "field_suggestions": True}
    )

    assert (production.graphiql_enabled, production.introspection_policy) == (False, "admin")
    assert production.suggestions_enabled is False
    assert (development.graphiql_enabled, development.introspection_policy) == (True, "on")
    assert development.suggestions_enabled is True
    assert (explicit.graphiql_enabled, explicit.introspection_policy) == (True, "on")
    assert explicit.suggestions_enabled is True
