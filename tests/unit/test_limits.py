"""The document limits as pure functions: tokens with comments, depth in field levels."""

from __future__ import annotations

import pytest
from graphql import parse, validate

from gateway.core.errors import QueryTooComplex
from schema import Limits, build_schema, check_document
from schema._bounds import DocumentCache, count_tokens, depth_limit_rule

SCHEMA = build_schema()._schema


@pytest.mark.parametrize(
    ("document", "tokens"),
    [
        ("{ a }", 3),
        ("{ a } # a comment", 4),
        ('{ a(b: "# not a comment") }', 8),
        ("#\n#\n{ a }", 5),
    ],
)
def test_tokens_are_counted_with_comments_and_strings_are_one_token(document, tokens):
    assert count_tokens(document, 100) == tokens


def test_counting_stops_past_the_limit():
    assert count_tokens("# c\n" * 100_000, 10) == 11


def test_a_document_is_checked_for_characters_before_tokens():
    limits = Limits(max_document_chars=10, max_tokens=3)

    check_document("{ a }", limits)
    with pytest.raises(QueryTooComplex, match="characters"):
        check_document("{ a }" + " " * 6, limits)
    with pytest.raises(QueryTooComplex, match="tokens"):
        check_document("{ a b }", limits)


def test_the_document_cache_checks_each_document_once_and_refuses_every_time():
    cache = DocumentCache(Limits(max_document_chars=10, max_tokens=3), hide_suggestions=False)

    cache.check("{ a }")
    cache.check("{ a }")  # remembered: not lexed again
    assert len(cache) == 1
    for _ in range(2):  # a refused document is never remembered
        with pytest.raises(QueryTooComplex, match="tokens"):
            cache.check("{ a b }")
    assert len(cache) == 1


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        ("{ __typename }", 1),
        ("{ me { id } }", 2),
        ("{ me { ... on User { id } } }", 2),
        ("{ ...F } fragment F on Query { me { id } }", 2),
        ("{ me { strategies { edges { node { id } } } } }", 5),
        ("{ __schema { types { fields { type { ofType { name } } } } } }", 0),
    ],
)
def test_depth_counts_field_levels(document, depth):
    at_most = validate(SCHEMA, parse(document), [depth_limit_rule(depth)])
    less = validate(SCHEMA, parse(document), [depth_limit_rule(depth - 1)]) if depth else []

    assert at_most == []
    if depth:
        assert len(less) == 1
        assert f"has {depth} field levels" in less[0].message
