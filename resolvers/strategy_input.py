"""Checking a strategy's fields before anything is written; each rule names its field.

Fields are keyed by the record's attribute names (`auto_reconnect`); errors name
them as the API does (`autoReconnect`). Which fields are editable, and the rule and
limit of each, come from the field table (`datasources.strategies.FIELDS`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from datasources import StoredField
from datasources.strategies import (
    BY_ATTR,
    EDITABLE,
    ENVIRONMENTS,
    MAX_CODE_BYTES,
    MAX_CONFIG_BYTES,
    MAX_INSTRUMENT,
)
from gateway.core.errors import BadUserInput
from resolvers.checks import Refusals, check_text_field, utf8_length

__all__ = ["MAX_INSTRUMENT", "api_name", "check_config", "check_fields"]

# MongoDB nests documents at most 100 deep; a config this deep is a mistake anyway.
MAX_CONFIG_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)


def api_name(field: str) -> str:
    """The name the API gives a record field."""
    return BY_ATTR[field].api


def check_code(value: str) -> str:
    """Strategy source code: at most 256 KiB once encoded as UTF-8 (stored as given)."""
    if utf8_length(value, "code") > MAX_CODE_BYTES:
        raise BadUserInput(
            f"'code' must be at most {MAX_CODE_BYTES // 1024} KiB (UTF-8).", field="code"
        )
    return value


def check_broker(value: str, brokers: Sequence[str]) -> str:
    """One of the configured brokers, matched case-insensitively, in its configured spelling."""
    wanted = value.strip().casefold()
    for broker in brokers:
        if broker.casefold() == wanted:
            return broker
    raise BadUserInput(f"'broker' must be one of: {', '.join(brokers)}.", field="broker")


def check_environment(value: str) -> str:
    """LIVE or TESTNET."""
    if value not in ENVIRONMENTS:
        raise BadUserInput(
            f"'environment' must be one of: {', '.join(ENVIRONMENTS)}.", field="environment"
        )
    return value


def _config_error(message: str) -> BadUserInput:
    return BadUserInput(f"'config' {message}", field="config")


def _check_config_values(config: Mapping[str, Any]) -> None:
    # Iterative, so a deeply nested value cannot exhaust the stack before it is refused.
    pending: list[tuple[Any, int]] = [(config, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise _config_error(f"must not nest deeper than {MAX_CONFIG_DEPTH} levels.")
        if isinstance(value, dict):
            for key, item in value.items():
                # Keys the storage treats as operators or paths, or cannot store at all.
                if key.startswith("$") or "." in key or "\x00" in key:
                    raise _config_error(
                        f"keys must not start with '$' or contain '.' or NUL: {key[:40]!r}."
                    )
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise _config_error("integers must fit in 64 bits.")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _config_error("numbers must be finite.")
        else:
            raise _config_error("must hold only JSON values.")


def check_config(value: Any) -> dict[str, Any]:
    """A JSON object of at most 64 KiB serialized (compact UTF-8 JSON)."""
    if not isinstance(value, dict):
        raise _config_error("must be a JSON object.")
    _check_config_values(value)
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _config_error("is not valid Unicode text.") from exc
    if len(encoded) > MAX_CONFIG_BYTES:
        raise _config_error(f"must be at most {MAX_CONFIG_BYTES // 1024} KiB as JSON.")
    return value


# The input rules a field of the table may name (`StoredField.rule`).
RULES: dict[str, Callable[[Any, StoredField, Sequence[str]], Any]] = {
    "text": lambda value, field, _brokers: check_text_field(value, field),
    "code": lambda value, _field, _brokers: check_code(value),
    "broker": lambda value, _field, brokers: check_broker(value, brokers),
    "environment": lambda value, _field, _brokers: check_environment(value),
    "json_object": lambda value, _field, _brokers: check_config(value),
    "bool": lambda value, _field, _brokers: bool(value),
}


def check_fields(given: Mapping[str, Any], *, brokers: Sequence[str]) -> dict[str, Any]:
    """The given fields, checked and normalized; a null is refused for every field.

    Every field is checked, in the table's order: each bad one is named, in that order
    (InvalidFields when there are several).
    """
    unknown = set(given) - {field.attr for field in EDITABLE}
    if unknown:
        raise ValueError(f"unknown strategy fields: {sorted(unknown)}")
    checked: dict[str, Any] = {}
    refusals = Refusals()
    for field in EDITABLE:
        if field.attr not in given:
            continue
        value = given[field.attr]
        if value is None:  # refused for every field, whatever its rule
            refusals.refuse(BadUserInput(f"'{field.api}' cannot be null.", field=field.api))
            continue
        rule = partial(RULES[str(field.rule)], value, field, brokers)
        checked[field.attr] = refusals.check(rule, refused=None)
    refusals.raise_any()
    return checked
