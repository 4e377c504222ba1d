"""Bounded work per request: the document's size, its depth, the caches, the response.

- `check_document` refuses, before anything parses it, a document longer than
  MAX_DOCUMENT_CHARS characters or holding more than MAX_QUERY_TOKENS tokens, comments
  counted (graphql-core's own token limit skips them, so a 50 MB comment was free).
- `depth_limit_rule` counts field levels: `{ me { id } }` has depth 2. Fragments and
  inline fragments add no level; `__typename` is a field like any other; `__schema` and
  `__type` are not counted, nor anything under them (introspection's depth is the
  schema's own, and production mode restricts who may ask it).
- `DocumentCache` remembers the parse and validation of documents of at most
  CACHE_MAX_DOCUMENT_CHARS characters, CACHED_DOCUMENTS of them: the memory it holds is
  bounded in bytes, whatever documents arrive.
- `bounded_executor` counts the objects and the bytes of leaf values as execution
  completes them; past MAX_RESPONSE_OBJECTS or MAX_RESPONSE_BYTES it stops completing
  and the whole answer becomes one RESPONSE_TOO_LARGE error (`BoundedResponse`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLLeafType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TokenKind,
    parse,
    validate,
)
from graphql.language import Lexer, Source
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.core.errors import QueryTooComplex, ResponseTooLarge
from gateway.core.settings import MAX_QUERY_COST


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one request (each a setting: gateway/core/settings.py)."""

    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_document_chars: int = 20_000
    max_response_objects: int = 20_000
    max_response_bytes: int = 4_000_000
    cache_max_document_chars: int = 8_000
    cached_documents: int = 256
    # What one query may cost (schema/_cost.py).
    max_cost: int = MAX_QUERY_COST


def count_tokens(query: str, stop_after: int) -> int:
    """The tokens of `query`, comments included, counting no further than `stop_after`+1.
    A document that does not lex is counted up to its error (the parser reports it)."""
    lexer = Lexer(Source(query))
    token = lexer.token
    count = 0
    try:
        while token.kind is not TokenKind.EOF and count <= stop_after:
            token = lexer.read_next_token(token.end)
            count += 1
    except GraphQLError:
        pass
    return count - 1 if token.kind is TokenKind.EOF else count


def check_document(query: str, limits: Limits) -> None:
    """Refuse a document longer than its limits allow, before it is parsed."""
    if len(query) > limits.max_document_chars:
        raise QueryTooComplex(
            f"The document is {len(query)} characters long; at most "
            f"{limits.max_document_chars} are accepted.",
            limit="documentChars",
            maximum=limits.max_document_chars,
        )
    if count_tokens(query, limits.max_tokens) > limits.max_tokens:
        raise QueryTooComplex(
            f"The document holds more than {limits.max_tokens} tokens (comments count).",
            limit="tokens",
            maximum=limits.max_tokens,
        )


_INTROSPECTION = frozenset({"__schema", "__type"})


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    visiting: frozenset[str],
    known: dict[str, int],
) -> int:
    """The field levels under `selection_set`. Each fragment is measured once (`known`):
    a document spreading fragments into one another twice over would otherwise cost
    time exponential in its length."""
    deepest = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            if selection.name.value in _INTROSPECTION:
                continue  # the schema's own shape bounds it (GraphiQL's query has 15 levels)
            below = _depth(selection.selection_set, fragments, visiting, known)
            deepest = max(deepest, 1 + below)
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, visiting, known))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if name not in known and fragment is not None and name not in visiting:
                # (cycles: NoFragmentCycles)
                known[name] = _depth(fragment.selection_set, fragments, visiting | {name}, known)
            deepest = max(deepest, known.get(name, 0))
    return deepest


def _aliases(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    visiting: frozenset[str],
    known: dict[str, int],
) -> int:
    """The aliases under `selection_set`, counted through every spread of a fragment; each
    fragment counted once (`known`), as `_depth` measures it."""
    total = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            total += (1 if selection.alias else 0) + _aliases(
                selection.selection_set, fragments, visiting, known
            )
        elif isinstance(selection, InlineFragmentNode):
            total += _aliases(selection.selection_set, fragments, visiting, known)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if name not in known and fragment is not None and name not in visiting:
                known[name] = _aliases(fragment.selection_set, fragments, visiting | {name}, known)
            total += known.get(name, 0)
    return total


def _fragments_of(document: Any) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def alias_limit_rule(max_aliases: int) -> type[ASTValidationRule]:
    """A rule refusing a document whose operations hold more than `max_aliases` aliases,
    counted through every spread of a fragment."""

    class MaxAliases(ASTValidationRule):
        def enter_document(self, node: Any, *_args: Any) -> None:
            fragments = _fragments_of(node)
            known: dict[str, int] = {}
            total = sum(
                _aliases(d.selection_set, fragments, frozenset(), known)
                for d in node.definitions
                if isinstance(d, OperationDefinitionNode)
            )
            if total > max_aliases:
                self.report_error(
                    GraphQLError(f"{total} aliases found. Allowed: {max_aliases}", node)
                )

    return MaxAliases


def depth_limit_rule(max_depth: int) -> type[ASTValidationRule]:
    """A rule refusing an operation with more than `max_depth` nested field levels."""

    class MaxDepth(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            context = self.context
            fragments = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            depth = _depth(node.selection_set, fragments, frozenset(), {})
            if depth > max_depth:
                name = node.name.value if node.name else "anonymous"
                context.report_error(
                    GraphQLError(
                        f"'{name}' has {depth} field levels: exceeds maximum operation "
                        f"depth of {max_depth}.",
                        node,
                    )
                )

    return MaxDepth


class DocumentCache:
    """Parses and validation results of small documents, least recently used dropped."""

    def __init__(self, limits: Limits, *, hide_suggestions: bool) -> None:
        self.limits = limits
        self.hide_suggestions = hide_suggestions
        self._parsed: OrderedDict[str, DocumentNode] = OrderedDict()
        self._validated: OrderedDict[str, list[GraphQLError]] = OrderedDict()
        self._checked: OrderedDict[str, None] = OrderedDict()
        # Per document, the cost of each of its operations that take no variables.
        self._costs: OrderedDict[str, dict[str | None, int]] = OrderedDict()

    def _remember(self, cache: OrderedDict[str, Any], query: str, value: Any) -> None:
        if len(query) > self.limits.cache_max_document_chars:
            return
        cache[query] = value
        while len(cache) > self.limits.cached_documents:
            cache.popitem(last=False)

    def check(self, query: str) -> None:
        """`check_document` under these limits, each distinct small document checked once
        (counting its tokens means lexing it whole)."""
        if query in self._checked:
            self._checked.move_to_end(query)
            return
        check_document(query, self.limits)
        self._remember(self._checked, query, None)

    def cost(self, query: str, operation_name: str | None, compute: Callable[[], int]) -> int:
        """The cost of an operation of `query` that takes no variables (so it is the same
        every time): `compute()` once per small document and operation."""
        known = self._costs.get(query)
        if known is not None:
            self._costs.move_to_end(query)
            if operation_name in known:
                return known[operation_name]
        cost = compute()
        if known is None:
            known = {}
            self._remember(self._costs, query, known)
        known[operation_name] = cost  # only operations the document holds get here
        return cost

    def parse(self, query: str, **options: Any) -> DocumentNode:
        """`query` parsed (raising its syntax error), from the cache when seen before."""
        if (document := self._parsed.get(query)) is not None:
            self._parsed.move_to_end(query)
            return document
        document = parse(query, **options)
        self._remember(self._parsed, query, document)
        return document

    def validate(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        """The validation errors of `document` (the same rules every time per schema)."""
        if (errors := self._validated.get(query)) is not None:
            self._validated.move_to_end(query)
            return errors
        errors = validate(schema, document, rules, hide_suggestions=self.hide_suggestions)
        self._remember(self._validated, query, errors)
        return errors

    def __len__(self) -> int:
        return len(self._parsed) + len(self._validated) + len(self._checked) + len(self._costs)

    @property
    def chars(self) -> int:
        """The characters of the documents held (the cached ASTs grow with them)."""
        caches = (self._parsed, self._validated, self._checked, self._costs)
        return sum(sum(map(len, cache)) for cache in caches)


def bounded_executor(limits: Limits) -> type[StrawberryGraphQLCoreExecutionContext]:
    """An executor that stops completing values past the response limits."""

    class BoundedExecutor(StrawberryGraphQLCoreExecutionContext):
        _objects = 0
        _bytes = 0

        def _over(self, what: str, maximum: int) -> ResponseTooLarge:
            return ResponseTooLarge(
                f"The response would hold more than {maximum} {what}; ask for fewer "
                "fields or smaller pages.",
                limit=what,
                maximum=maximum,
            )

        def complete_object_value(self, *args: Any, **kwargs: Any) -> Any:
            self._objects += 1
            if self._objects > limits.max_response_objects:
                raise self._over("objects", limits.max_response_objects)
            return super().complete_object_value(*args, **kwargs)

        def complete_leaf_value(  # type: ignore[override]
            self, return_type: GraphQLLeafType, result: Any
        ) -> Any:
            return self.counted(
                StrawberryGraphQLCoreExecutionContext.complete_leaf_value(return_type, result)
            )

        def counted(self, value: Any) -> Any:
            """A leaf's serialized `value`, counted towards the response's bytes."""
            # No more than its JSON text (the key, quotes and separators come on top), so
            # the serialized check (gateway/http.py) is the exact bound, this the early one.
            self._bytes += len(value) + 2 if isinstance(value, str) else 1
            if self._bytes > limits.max_response_bytes:
                raise self._over("bytes", limits.max_response_bytes)
            return value

    return BoundedExecutor


def _too_large(error: GraphQLError) -> bool:
    return isinstance(error.original_error, ResponseTooLarge)


class BoundedResponse(SchemaExtension):
    """An answer stopped by the response limits is that one error, without data: its
    partial data and the errors of the fields cut with it are dropped."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        stopped = next((error for error in result.errors if _too_large(error)), None)
        if stopped is not None:
            result.data = None
            result.errors = [stopped]
