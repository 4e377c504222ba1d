"""The pieces of persisted operations that need no server: manifests, the memory store."""

from __future__ import annotations

import hashlib
import json

import pytest

from gateway.persisted import ManifestError, MemoryQueries, parse_manifest

VIEWER = "query Viewer { me { id } }"
LOGOUT = 'mutation Logout { logout(refreshToken: "x") }'


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo(*operations: dict[str, str]) -> str:
    return json.dumps(
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": list(operations)}
    )


def test_an_apollo_manifest_gives_each_operation_its_id_name_type_and_hash():
    text = apollo(
        {"id": sha256(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER},
        {"id": "logout-v1", "name": "Logout", "type": "mutation", "body": LOGOUT},
    )

    operations = parse_manifest(text)

    assert [(op.id, op.name, op.type, op.sha256) for op in operations] == [
        (sha256(VIEWER), "Viewer", "query", sha256(VIEWER)),
        ("logout-v1", "Logout", "mutation", sha256(LOGOUT)),
    ]


def test_a_persisted_documents_json_takes_sha256_and_sha1_ids_and_reads_name_and_type():
    sha1 = hashlib.sha1(LOGOUT.encode()).hexdigest()  # noqa: S324 - codegen's default id
    text = json.dumps({sha256(VIEWER): VIEWER, sha1: LOGOUT, f"sha256:{sha256(VIEWER)}": VIEWER})

    operations = parse_manifest(text)

    assert [(op.id, op.name, op.type) for op in operations] == [
        (sha256(VIEWER), "Viewer", "query"),
        (sha1, "Logout", "mutation"),
        (f"sha256:{sha256(VIEWER)}", "Viewer", "query"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (json.dumps({sha256(LOGOUT): VIEWER}), "not the SHA-256 of its body"),
        (json.dumps({f"sha256:{'0' * 64}": VIEWER}), "not the SHA-256 of its body"),
        (json.dumps({"0" * 40: VIEWER}), "not the SHA-1 of its body"),
        (json.dumps({"broken": "query {"}), "does not parse"),
        (json.dumps({"fragment-only": "fragment F on User { id }"}), "holds no operation"),
        (json.dumps({"": VIEWER}), "an id must be"),
        ("not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "no known format"),
        (json.dumps({"operations": [1]}), "no known format"),
        (apollo(), "lists no operations"),
        (
            json.dumps({"format": "apollo-persisted-query-manifest", "version": 2}),
            "only 1",
        ),
        (apollo({"id": "x", "body": 5}), "needs a string 'id' and 'body'"),  # type: ignore[dict-item]
        (
            apollo({"id": "same", "body": VIEWER}, {"id": "same", "body": LOGOUT}),
            "listed twice",
        ),
    ],
)
def test_a_bad_manifest_is_refused_whole_with_its_problem_named(text, problem):
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(text)


def test_every_problem_of_a_manifest_is_listed_at_once():
    text = json.dumps({sha256(LOGOUT): VIEWER, "ok": VIEWER, "broken": "{"})

    with pytest.raises(ManifestError) as refused:
        parse_manifest(text)

    assert len(refused.value.problems) == 2


def test_the_memory_store_drops_the_least_recently_used_past_its_entries():
    store = MemoryQueries(max_entries=2, max_chars=1000)
    store.put("a", "A")
    store.put("b", "B")
    assert store.get("a") == "A"  # now the most recently used

    store.put("c", "C")

    assert (store.get("a"), store.get("b"), store.get("c")) == ("A", None, "C")


def test_the_memory_store_stays_within_its_characters():
    store = MemoryQueries(max_entries=100, max_chars=10)
    store.put("a", "x" * 6)
    store.put("b", "y" * 6)
    store.put("too-long", "z" * 11)

    assert (store.get("a"), store.get("b"), store.get("too-long")) == (None, "y" * 6, None)
    assert store.chars == 6
