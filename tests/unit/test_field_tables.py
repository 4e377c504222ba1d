"""Each stored type's field table is the one list of its fields: the record, the GraphQL type
and the inputs are derived from it or checked against it here, without a database."""

from __future__ import annotations

import dataclasses

import pytest
from bson import ObjectId
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType

from datasources import credentials, trades, users
from datasources._fields import StoredField, field_reader, read_fields, store_fields
from datasources.strategies import BY_ATTR, EDITABLE, FIELDS, StrategyRecord, _record
from resolvers.strategy_input import RULES
from schema import build_schema

SCHEMA = build_schema()
# Fields of the record and the type that are not stored fields of the table.
KEYS = {"id", "user_id", "created_at", "updated_at"}
JOINS = {"owner", "trades", "performance"}


def _declared(type_name: str) -> set[str]:
    """The fields a type or input shows in the GraphQL schema."""
    found = SCHEMA._schema.get_type(type_name)
    assert isinstance(found, GraphQLObjectType | GraphQLInputObjectType), type_name
    return set(found.fields)


def test_the_record_has_exactly_the_tables_fields() -> None:
    assert {field.name for field in dataclasses.fields(StrategyRecord)} == KEYS | set(BY_ATTR)


def test_the_graphql_type_shows_every_field_of_the_table() -> None:
    expected = {field.api for field in FIELDS} | {"id", "createdAt", "updatedAt"} | JOINS
    assert _declared("Strategy") == expected


def test_the_inputs_take_exactly_the_editable_fields() -> None:
    editable = {field.api for field in EDITABLE}
    assert _declared("CreateStrategyInput") == editable | {"clientMutationId"}
    assert _declared("UpdateStrategyInput") == editable


def test_every_editable_field_names_an_input_rule() -> None:
    assert all(field.rule in RULES for field in EDITABLE)


def test_runtime_fields_are_editable() -> None:
    assert all(field.editable for field in FIELDS if field.runtime)


def test_api_names_are_the_attributes_in_camel_case() -> None:
    assert BY_ATTR["auto_reconnect"].api == "autoReconnect"
    assert BY_ATTR["last_heartbeat"].api == "lastHeartbeat"
    assert BY_ATTR["name"].api == "name"


def test_a_document_without_the_optional_fields_reads_as_their_defaults() -> None:
    oid = ObjectId()
    record = _record({"_id": oid, "userId": ObjectId(), "name": "n"})

    assert record.status == "STOPPED"
    assert record.environment == "TESTNET"
    assert record.config == {}
    assert record.auto_reconnect is False
    assert record.error_count == 0
    assert record.container_id is None
    assert record.created_at == record.updated_at == oid.generation_time


def test_stored_values_are_read_in_their_record_form() -> None:
    record = _record(
        {
            "_id": ObjectId(),
            "userId": ObjectId(),
            "name": "n",
            "status": "active",
            "environment": "live",
            "config": None,
            "autoReconnect": 1,
            "errorCount": "3",
        }
    )

    assert (record.status, record.environment, record.config) == ("ACTIVE", "LIVE", {})
    assert (record.auto_reconnect, record.error_count) == (True, 3)


def test_values_are_stored_in_the_platforms_shape() -> None:
    assert BY_ATTR["status"].store("PAUSED") == "paused"
    assert BY_ATTR["environment"].store("LIVE") == "live"
    assert BY_ATTR["config"].store(None) == {}


def test_the_user_record_type_and_profile_input_follow_the_user_table() -> None:
    record_fields = {field.name for field in dataclasses.fields(users.UserRecord)}
    assert record_fields == KEYS - {"user_id"} | {"deleting"} | {f.attr for f in users.FIELDS}
    shown = {field.api for field in users.FIELDS if field.shown}
    joins = {"strategies", "credentials", "trades", "analytics"}
    assert _declared("User") == shown | {"id", "createdAt", "updatedAt"} | joins
    assert "passwordHash" not in _declared("User")
    assert _declared("UpdateProfileInput") == {field.api for field in users.EDITABLE}


def test_the_trade_record_and_type_follow_the_trade_table() -> None:
    record_fields = {field.name for field in dataclasses.fields(trades.TradeRecord)}
    assert record_fields == {"id"} | {field.attr for field in trades.FIELDS}
    shown = {field.api for field in trades.FIELDS if field.shown}
    assert _declared("Trade") == shown | {"id", "netPnl", "strategy"}
    columns = {column.name for column in trades.trades.columns}
    assert columns == {"id"} | {field.stored for field in trades.FIELDS}


def test_the_credentials_input_and_enum_follow_the_secret_fields() -> None:
    secrets = set(credentials.SECRET_FIELDS)
    assert _declared("SaveCredentialsInput") == secrets | {
        credentials.CLIENT_ID,
        "broker",
        "clientMutationId",
    }
    enum = SCHEMA._schema.get_type("CredentialField")
    assert isinstance(enum, GraphQLEnumType)
    assert {value.value for value in enum.values.values()} == secrets


def test_storing_refuses_an_unknown_field_or_a_missing_required_one() -> None:
    with pytest.raises(ValueError, match="unknown fields \\['id'\\]"):
        store_fields(trades.FIELDS, {"id": 1})
    with pytest.raises(ValueError, match="'side'"):
        store_fields([field for field in trades.FIELDS if field.attr == "side"], {})


def test_reading_a_document_without_a_required_field_fails() -> None:
    with pytest.raises(KeyError):
        users._record({"_id": ObjectId()})


@pytest.mark.parametrize(
    "table", [users.FIELDS, FIELDS, trades.FIELDS], ids=["user", "strategy", "trade"]
)
def test_a_planned_field_reader_reads_as_each_field_does(table: tuple[StoredField, ...]) -> None:
    read = field_reader(table)
    required = {field.stored: f"stored {field.stored}" for field in table if field.required}
    # Every field absent (its default), then every field present with a value its load takes.
    everything = {field.stored: field.store(field.default) for field in table} | required
    everything |= {"status": "active", "environment": "live", "role": "admin", "side": "buy"}
    for stored in (required, everything):
        expected = {field.attr: field.read(stored) for field in table}
        assert read(stored) == read_fields(table, stored) == expected
    if required:
        with pytest.raises(KeyError):
            read({})
