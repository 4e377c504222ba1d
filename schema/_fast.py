"""The execution fast path: plain attribute leaves completed without the per-field machinery.

Most fields of a large answer are leaves read straight off an object: a trade's `quantity`,
a strategy's `name`. graphql-core and Strawberry run each one through the same steps as a
resolver with arguments and permissions: a `Path`, a resolve info, the argument check,
Strawberry's resolver wrapper, two awaitable checks and `complete_value`'s type dispatch.
For a *plain leaf* (a Strawberry field with no resolver, no field extensions, no arguments,
read with `getattr`, of a scalar or enum type) the answer is always
`complete_leaf_value(type, getattr(source, name))`, so the executor here computes exactly
that and nothing else.

The fast path only ever returns what the standard path would return: when the value is
missing, null for a non-null field, an exception, or does not serialize, it steps aside and
the field runs through the standard path, which reports it (located, coded) as before. The
standard executor is the oracle: `tests/schema/test_fast_path.py` runs the README's queries
and the fuzz corpus through both and compares the answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

__all__ = ["PlainLeaf", "fast_executor", "plain_leaves"]


@dataclass(frozen=True, slots=True)
class PlainLeaf:
    """A leaf field answered by reading one attribute of its parent object."""

    attribute: str  # the Python attribute (snake_case) holding the value
    type: GraphQLLeafType  # the scalar or enum, non-null unwrapped
    non_null: bool
    # A relay Node's `id`: the attribute holds the key, the answer is the global id of
    # this type keyed by it (what `relay.Node`'s resolver answers).
    node_type: str | None = None


PlainLeaves = Mapping[str, Mapping[str, PlainLeaf]]  # object type name -> field name -> leaf


def _declared(type_: GraphQLObjectType, python_name: str) -> StrawberryField | None:
    """The field as its type declares it: where `@aggregate` and permissions add their
    checks (the schema's own copy of an inherited field may not show them)."""
    definition = type_.extensions.get("strawberry-definition")
    declared = getattr(definition, "get_field", lambda _name: None)(python_name)
    return declared if isinstance(declared, StrawberryField) else None


def _plain_leaf(type_: GraphQLObjectType, field: Any) -> PlainLeaf | None:
    definition = field.extensions.get("strawberry-definition")
    if not isinstance(definition, StrawberryField) or field.args:
        return None
    # No resolver, no field extensions (permissions are extensions), read with `getattr`,
    # and resolved by Strawberry's basic resolver (no exception handler wraps it).
    if not definition.is_basic_field or definition.default_resolver is not getattr:
        return None
    declared = _declared(type_, definition.python_name)
    if declared is None or not declared.is_basic_field:
        return None
    if getattr(field.resolve, "__name__", None) != "_get_basic_result":
        return None
    inner, non_null = field.type, isinstance(field.type, GraphQLNonNull)
    if non_null:
        inner = inner.of_type
    if not is_leaf_type(inner):
        return None
    return PlainLeaf(definition.python_name, inner, non_null)


def _function(method: Any) -> Any:
    """The function a (class) method calls."""
    return getattr(method, "__func__", None)


def _node_id(type_: GraphQLObjectType) -> PlainLeaf | None:
    """The `id` of a relay Node type whose id is its NodeID attribute, as Strawberry's own
    resolver answers it (neither `resolve_id` nor `resolve_typename` overridden)."""
    definition = type_.extensions.get("strawberry-definition")
    origin = getattr(definition, "origin", None)
    field = type_.fields.get("id")
    if not isinstance(origin, type) or not issubclass(origin, relay.Node) or field is None:
        return None
    own = getattr(field.extensions.get("strawberry-definition"), "base_resolver", None)
    declared = _declared(type_, "id")
    if (
        declared is None
        or declared.extensions  # a permission or a check on the id: it must run
        or _function(getattr(own, "wrapped_func", None)) is not _function(relay.Node._id)
        or _function(origin.resolve_id) is not _function(relay.Node.resolve_id)
        or _function(origin.resolve_typename) is not _function(relay.Node.resolve_typename)
        or field.args
        or not isinstance(field.type, GraphQLNonNull)
    ):
        return None
    inner = field.type.of_type
    if not is_leaf_type(inner):
        return None
    return PlainLeaf(origin.resolve_id_attr(), inner, non_null=True, node_type=type_.name)


def plain_leaves(schema: GraphQLSchema) -> dict[str, dict[str, PlainLeaf]]:
    """Every plain leaf of every object type of `schema` (introspection's types aside)."""
    found: dict[str, dict[str, PlainLeaf]] = {}
    for name, type_ in schema.type_map.items():
        if not isinstance(type_, GraphQLObjectType) or name.startswith("__"):
            continue
        leaves = {
            field_name: leaf
            for field_name, field in type_.fields.items()
            if (leaf := _plain_leaf(type_, field)) is not None
        }
        if (node_id := _node_id(type_)) is not None:
            leaves["id"] = node_id
        if leaves:
            found[name] = leaves
    return found


# One step of a selection set: the response name, its field nodes, and the plain leaf it
# reads (None: the field runs through the standard path).
_Step = tuple[str, FieldDetailsList, PlainLeaf | None]


def fast_executor(
    base: type[StrawberryGraphQLCoreExecutionContext], leaves: PlainLeaves
) -> type[StrawberryGraphQLCoreExecutionContext]:
    """`base` (schema/_bounds.py `bounded_executor`: it has `counted`) with the fast path
    for `leaves`; every other field runs as in `base`."""

    class FastExecutor(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Per selection set (graphql-core memoizes each one per field group, so a
            # list's items share it): its steps, or None when it has no plain leaf. The
            # set itself is kept alive with them, so its id cannot be reused.
            self._steps: dict[int, tuple[GroupedFieldSet, tuple[_Step, ...] | None]] = {}

        def _steps_of(
            self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
        ) -> tuple[_Step, ...] | None:
            known = self._steps.get(id(grouped_field_set))
            if known is not None:
                return known[1]
            of_type = leaves.get(parent_type.name, {})
            steps = tuple(
                (response_name, details, of_type.get(details[0].node.name.value))
                for response_name, details in grouped_field_set.items()
            )
            plan = steps if any(leaf is not None for *_, leaf in steps) else None
            self._steps[id(grouped_field_set)] = (grouped_field_set, plan)
            return plan

        def execute_fields(  # noqa: PLR0912 - one loop, inlined: it runs for every object
            self,
            parent_type: GraphQLObjectType,
            source_value: Any,
            path: Path | None,
            grouped_field_set: GroupedFieldSet,
            position_context: Any,
        ) -> AwaitableOrValue[dict[str, Any]]:
            steps = None
            middleware = self.middleware_manager
            if middleware is None or not middleware.middlewares:  # no extension resolves
                steps = self._steps_of(parent_type, grouped_field_set)
            if steps is None:
                standard: AwaitableOrValue[dict[str, Any]] = super().execute_fields(
                    parent_type, source_value, path, grouped_field_set, position_context
                )
                return standard
            # The byte bound of schema/_bounds.py, as `complete_leaf_value` counts it.
            counted = self.counted
            is_awaitable = self.is_awaitable
            results: dict[str, Any] = {}
            awaitable_fields: list[str] = []
            try:
                for response_name, details, leaf in steps:
                    if leaf is not None:
                        # complete_value's steps for a leaf, inlined; on anything unusual
                        # (an exception, a null for a non-null field, a value that does not
                        # serialize), the standard path below runs the field and reports it.
                        try:
                            value = getattr(source_value, leaf.attribute, Undefined)
                            if leaf.node_type is not None:  # a key: its global id, if it is one
                                value = (
                                    to_base64(leaf.node_type, value)
                                    if type(value) is str
                                    else Undefined
                                )
                            if value is None:
                                if not leaf.non_null:
                                    results[response_name] = None
                                    continue
                            elif value is not Undefined and not isinstance(value, Exception):
                                coerced = leaf.type.coerce_output_value(value)
                                if coerced is not None and coerced is not Undefined:
                                    results[response_name] = counted(coerced)
                                    continue
                        except Exception:  # noqa: BLE001, S110 - the standard path reports it
                            pass
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        details,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is not Undefined:
                        results[response_name] = result
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
            except Exception:
                if awaitable_fields:  # settle the other fields' work, as graphql-core does
                    self.settle_in_background([results[name] for name in awaitable_fields])
                raise
            if not awaitable_fields:
                return results
            return _awaited(results, awaitable_fields)

    return FastExecutor


async def _awaited(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    if len(awaitable_fields) == 1:
        name = awaitable_fields[0]
        results[name] = await results[name]
    else:
        values = await gather_with_cancel(*(results[name] for name in awaitable_fields))
        results.update(zip(awaitable_fields, values, strict=True))
    return results
