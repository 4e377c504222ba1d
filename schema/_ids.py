"""Global ids: every object's `id` is opaque and unique across types (Relay's Global Object
Identification).

An id is base64 of `Type:key` (Strawberry's `relay.GlobalID`): `Strategy:<ObjectId hex>`,
`Trade:<bigint>`. Clients treat it as opaque; the gateway reads the type and the key back
from it, so every id argument takes the same id the object shows (and a federation
representation `{__typename, id}` names its key).

Arguments that take an id are typed `GlobalIdInput` (tests/schema/test_nodes.py walks the
schema for it): the `ID` scalar, read as is, and turned into a key with `key_of` inside the
resolver, so after the field's permission check (a malformed id never tells an anonymous
caller more than UNAUTHENTICATED).
"""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry import relay
from strawberry.relay import GlobalIDValueError
from strawberry.relay.utils import to_base64
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY

from gateway.core.errors import BadUserInput
from resolvers.nodes import is_key

GlobalID = relay.GlobalID

# The type of every argument or input field that takes an id: a global id, as a string.
GlobalIdInput = NewType("GlobalIdInput", str)
# It is the schema's one `ID` scalar (`build_schema` maps it there).
ID_SCALAR = DEFAULT_SCALAR_REGISTRY[strawberry.ID]


def global_id(type_name: str, key: str) -> strawberry.ID:
    """The global id of the object of `type_name` keyed `key` (what `str(GlobalID)` is)."""
    return strawberry.ID(to_base64(type_name, key))


def parse_global_id(value: str) -> tuple[str, str] | None:
    """The (type name, key) a global id names; None when `value` is not one of ours (not
    base64 of `Type:key`, a type without ids, or a key that type cannot have)."""
    try:
        parsed = GlobalID.from_id(value)
    except (GlobalIDValueError, TypeError):
        return None
    if not is_key(parsed.type_name, parsed.node_id):
        return None
    # Only the spelling the API gives out: base64 decoding forgives extra padding and
    # such, and two strings naming one object would be two records in a client cache.
    if global_id(parsed.type_name, parsed.node_id) != value:
        return None
    return parsed.type_name, parsed.node_id


def key_of(value: GlobalIdInput, type_name: str, *, field: str) -> str:
    """The key of the `type_name` object an id argument names; BAD_USER_INPUT (with the
    argument's name in `field`) when it is an id of another type, or not one of ours."""
    parsed = parse_global_id(value)
    if parsed is None or parsed[0] != type_name:
        raise BadUserInput(f"'{field}' must be the id of a {type_name}.", field=field)
    return parsed[1]


def optional_key_of(value: GlobalIdInput | None, type_name: str, *, field: str) -> str | None:
    """`key_of` for an optional argument: None stays None."""
    return None if value is None else key_of(value, type_name, field=field)
