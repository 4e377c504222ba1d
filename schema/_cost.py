"""What a query costs, computed before it runs, and the budget it must fit.

Each field's cost is declared on the field itself, in the directives of the IBM GraphQL
Cost Directive specification (the ones Apollo's demand control reads), so the SDL shows
the model and a new field cannot drift from a separate table:

    @cost(weight: 10)     what resolving the field once costs. Without it: 1 for a field
                          of an object type (a loader lookup, or a part of its parent), 0
                          for a scalar or enum, which comes with its parent's read.
    @listSize(assumedSize: 12)
                          a list of at most 12 items.
    @listSize(slicingArguments: ["first"], sizedFields: ["edges"])
                          a list, or a connection whose `edges` are, of `first` items: the
                          argument (a literal or a variable), its default when omitted,
                          never more than the largest page. A list argument (`nodes(ids:)`,
                          `_entities(representations:)`) slices by its whole length.

A field costs its weight plus its size times the cost of what is selected under it (for a
connection, only its sized fields are multiplied); an item of a list of a union
(`_entities`) is an object read by itself: it costs 1 plus its selection. A selection
costs the sum of its fields,
fragments included, each fragment priced on its own type (under `node`, every `... on
Strategy` counts, as if each type matched). Every list field declares its size
(`test_cost.py` walks the schema).
A query over the budget (MAX_QUERY_COST) is refused before any source is asked, with
QUERY_TOO_COMPLEX, the cost and the budget in `extensions`; every query that runs reports
its cost in the response's `extensions.cost`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    value_from_ast_untyped,
)
from graphql.execution import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.schema_directive import Location

from gateway.core.errors import QueryTooComplex

if TYPE_CHECKING:
    from schema._bounds import DocumentCache
from gateway.core.settings import MAX_PAGE_SIZE
from resolvers.pagination import DEFAULT_PAGE_SIZE


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="cost",
    description="What resolving this field once costs, in the query budget's units.",
)
class Cost:
    weight: int = strawberry.field(description="The field's own cost, before any list size.")


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="listSize",
    description=(
        "How many items this list field returns: assumedSize, or the value of one of the "
        "slicingArguments; with sizedFields, the list is those fields of the returned object."
    ),
)
class ListSize:
    # UNSET, not None: an argument left out is left out of the printed SDL too.
    assumed_size: int | None = strawberry.field(
        default=strawberry.UNSET, description="The size to assume when no argument gives it."
    )
    slicing_arguments: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The arguments whose value is the size."
    )
    sized_fields: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The fields of the result that are the list."
    )


# A connection of `first` items (DEFAULT_PAGE_SIZE when omitted): its edges are the list.
PAGE = ListSize(slicing_arguments=["first"], sized_fields=["edges"], assumed_size=DEFAULT_PAGE_SIZE)
# What a field that computes over many rows (a count, a sum, a series) costs once.
AGGREGATE = Cost(weight=10)


@dataclass(frozen=True, slots=True)
class FieldCost:
    """The cost model of one field."""

    weight: int
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] = ()
    sized_fields: tuple[str, ...] = ()
    is_list: bool = False
    # What each item costs before its selection: 1 for a list of a union (each item is
    # read by itself, whatever is selected under it: `_entities`), else 0.
    per_item: int = 0
    # The name of the type it returns (lists and non-null unwrapped).
    returns: str = ""

    @property
    def sized(self) -> bool:
        """Whether the field declares how many items it returns."""
        return self.assumed_size is not None or bool(self.slicing_arguments)


def field_cost(field: GraphQLField) -> FieldCost:
    """The cost model a field declares (or the default for its type)."""
    named = get_named_type(field.type)
    weight = 0 if is_leaf_type(named) else 1
    size = FieldCost(weight=weight)
    definition = (field.extensions or {}).get("strawberry-definition")
    for directive in getattr(definition, "directives", ()) or ():
        if isinstance(directive, Cost):
            weight = directive.weight
        elif isinstance(directive, ListSize):
            assumed = directive.assumed_size
            size = FieldCost(
                weight=weight,
                assumed_size=assumed if isinstance(assumed, int) else None,
                slicing_arguments=tuple(directive.slicing_arguments or ()),
                sized_fields=tuple(directive.sized_fields or ()),
            )
    inner = field.type.of_type if is_non_null_type(field.type) else field.type
    by_ids = any(
        is_list_type(get_nullable_type(field.args[name].type))
        for name in size.slicing_arguments
        if name in field.args
    )
    return FieldCost(
        weight=weight,
        assumed_size=size.assumed_size,
        slicing_arguments=size.slicing_arguments,
        sized_fields=size.sized_fields,
        is_list=is_list_type(inner),
        # Each item of a list of a union, or of a list fetched by a list of ids (`nodes`,
        # `_entities`, the merge queries), is an object read, whatever is selected of it.
        per_item=1
        if is_list_type(inner) and (isinstance(named, GraphQLUnionType) or by_ids)
        else 0,
        returns=named.name,
    )


class CostModel:
    """The cost model of every field of a schema, read once."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.fields: dict[tuple[str, str], FieldCost] = {}
        for named in schema.type_map.values():
            if isinstance(named, GraphQLObjectType) and not named.name.startswith("__"):
                for name, field in named.fields.items():
                    self.fields[(named.name, name)] = field_cost(field)

    def cost(
        self,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any] | None,
    ) -> int:
        """What `operation` costs with these variables."""
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return 0
        walk = _Walk(self, fragments, _variable_values(operation, variables or {}))
        return walk.selection(operation.selection_set, root)


def _variable_values(
    operation: OperationDefinitionNode, given: Mapping[str, Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name in given:
            values[name] = given[name]
        elif definition.default_value is not None:
            # Any default, not only an Int: a list given as a default sizes its field too.
            values[name] = value_from_ast_untyped(definition.default_value)
    return values


class _Walk:
    """One operation's cost. Each fragment is priced once per type and sized fields
    (`_known`): a document spreading fragments into one another twice over would otherwise
    take time exponential in its length."""

    def __init__(
        self,
        model: CostModel,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.fragments = fragments
        self.variables = variables
        self._known: dict[tuple[str, str, tuple[str, ...]], tuple[int, int]] = {}
        self._visiting: set[str] = set()

    def selection(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        sized, other = self._split(selection_set, parent, ())
        return sized + other

    def _split(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType,
        sized_fields: tuple[str, ...],
    ) -> tuple[int, int]:
        """The cost of the fields named in `sized_fields`, and of the others."""
        sized = other = 0
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                cost = self.field(node, parent)
                if node.name.value in sized_fields:
                    sized += cost
                else:
                    other += cost
                continue
            if isinstance(node, InlineFragmentNode):
                inner = self._split(
                    node.selection_set, self._condition(node.type_condition, parent), sized_fields
                )
            elif isinstance(node, FragmentSpreadNode):
                inner = self._spread(node.name.value, parent, sized_fields)
            else:
                continue
            sized, other = sized + inner[0], other + inner[1]
        return sized, other

    def _spread(
        self, name: str, parent: GraphQLNamedType, sized_fields: tuple[str, ...]
    ) -> tuple[int, int]:
        key = (name, parent.name, sized_fields)
        if key not in self._known:
            fragment = self.fragments.get(name)
            if fragment is None or name in self._visiting:  # cycles: validation refuses them
                return 0, 0
            self._visiting.add(name)
            try:
                self._known[key] = self._split(
                    fragment.selection_set,
                    self._condition(fragment.type_condition, parent),
                    sized_fields,
                )
            finally:
                self._visiting.discard(name)
        return self._known[key]

    def _condition(self, condition: NamedTypeNode | None, parent: GraphQLNamedType) -> Any:
        # A fragment selects fields of its own type (an object type under an interface).
        named = self.model.schema.get_type(condition.name.value) if condition else None
        return named if named is not None else parent

    def field(self, node: FieldNode, parent: GraphQLNamedType) -> int:
        name = node.name.value
        if name.startswith("__"):  # introspection and __typename: answered from the schema
            return 0 if name == "__typename" else 1
        model = self.model.fields.get((parent.name, name))
        if model is None or not isinstance(parent, GraphQLObjectType):
            # A field of an interface (`Node.id`): a scalar comes with its object (which
            # the list it is in paid for), anything else is an object read.
            fields = getattr(parent, "fields", {})
            named = get_named_type(fields[name].type) if name in fields else None
            return 0 if named is not None and is_leaf_type(named) else 1
        child = get_named_type(parent.fields[name].type)
        size = self._size(node, model)
        sized, other = self._split(node.selection_set, child, model.sized_fields)
        if not model.sized_fields:
            return model.weight + size * (model.per_item + other)
        return model.weight + size * sized + other

    def _size(self, node: FieldNode, model: FieldCost) -> int:
        if not model.slicing_arguments:
            return model.assumed_size if model.assumed_size is not None else 1
        for argument in node.arguments or ():
            if argument.name.value not in model.slicing_arguments:
                continue
            value: Any = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, ListValueNode):
                return len(argument.value.values)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
                if isinstance(value, list):
                    return len(value)
            if isinstance(value, float) and value.is_integer():  # JSON 100.0 is Int 100
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(0, min(value, MAX_PAGE_SIZE))
        return model.assumed_size if model.assumed_size is not None else MAX_PAGE_SIZE


def unsized_lists(schema: GraphQLSchema) -> list[str]:
    """The list fields that declare no size (each must: see the module docstring)."""
    model = CostModel(schema)
    sized_by_parent = {
        (cost.returns, sized) for cost in model.fields.values() for sized in cost.sized_fields
    }
    return sorted(
        f"{parent}.{field}"
        for (parent, field), cost in model.fields.items()
        if cost.is_list and not cost.sized and (parent, field) not in sized_by_parent
    )


def operation_of(
    document: Any, operation_name: str | None
) -> tuple[OperationDefinitionNode | None, dict[str, FragmentDefinitionNode]]:
    """The operation a request runs, and the document's fragments."""
    operations: list[OperationDefinitionNode] = []
    fragments: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
        elif isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
    chosen = _chosen(operations, operation_name)
    return chosen, fragments


def _chosen(
    operations: Sequence[OperationDefinitionNode], name: str | None
) -> OperationDefinitionNode | None:
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


class CostLimit(SchemaExtension):
    """Refuses an operation over the budget before it runs; reports the cost of the others."""

    def __init__(self, *, budget: int, documents: DocumentCache | None = None) -> None:
        self.budget = budget
        self.documents = documents  # where the cost of an operation without variables is kept
        self.cost: int | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            operation, fragments = operation_of(document, context.operation_name)
            if operation is not None:
                model = _model(context.schema._schema)

                def compute() -> int:
                    return model.cost(operation, fragments, context.variables)

                if self.documents is None or operation.variable_definitions or not context.query:
                    self.cost = compute()
                else:
                    self.cost = self.documents.cost(context.query, context.operation_name, compute)
                if self.cost > self.budget:
                    error = QueryTooComplex(
                        f"This query would cost {self.cost}; the budget is {self.budget}.",
                        cost=self.cost,
                        budget=self.budget,
                    )
                    context.result = GraphQLExecutionResult(
                        data=None,
                        errors=[GraphQLError(error.message, original_error=error)],
                    )
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None or self.cost > self.budget:
            return {}
        return {"cost": {"requested": self.cost, "budget": self.budget}}


_MODELS: dict[int, CostModel] = {}


def _model(schema: GraphQLSchema) -> CostModel:
    model = _MODELS.get(id(schema))
    if model is None or model.schema is not schema:
        model = _MODELS[id(schema)] = CostModel(schema)
    return model
