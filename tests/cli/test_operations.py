"""`gateway operations add | list | remove`, run as a real process against the suite's
databases: both manifest formats, and a bad manifest refused whole."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from datasources.persisted_operations import list_operations
from tests.helpers import app_client, body_of, run

pytestmark = pytest.mark.slow

VIEWER = "query Viewer { __typename }"
LOGOUT = 'mutation Logout { logout(refreshToken: "x") }'
ROOT_NAME = "query RootName { __typename }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def apollo_manifest(tmp_path: Path) -> str:
    return write(
        tmp_path / "persisted-query-manifest.json",
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha256(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER},
                {"id": "logout-v1", "name": "Logout", "type": "mutation", "body": LOGOUT},
            ],
        },
    )


def guild_manifest(tmp_path: Path) -> str:
    return write(tmp_path / "persisted-documents.json", {sha256(ROOT_NAME): ROOT_NAME})


async def test_operations_add_loads_both_formats_and_trusted_mode_runs_them(
    settings, sources, tmp_path
):
    added = run(settings, "operations", "add", apollo_manifest(tmp_path), guild_manifest(tmp_path))
    again = run(settings, "operations", "add", apollo_manifest(tmp_path))
    listed = run(settings, "operations", "list")

    assert added.returncode == 0, added.stderr
    assert "3 added, 0 already present" in added.stderr
    assert again.returncode == 0, again.stderr
    assert "0 added, 2 already present" in again.stderr
    assert sorted(listed.stdout.splitlines()) == sorted(
        [
            f"{sha256(VIEWER)}\tquery\tViewer",
            "logout-v1\tmutation\tLogout",
            f"{sha256(ROOT_NAME)}\tquery\tRootName",
        ]
    )
    async with app_client(settings, persisted_operations="trusted") as client:
        by_guild_hash = await client.post("/graphql", json={"documentId": sha256(ROOT_NAME)})
        by_apollo_hash = await client.post(
            "/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(VIEWER)}}},
        )
    assert body_of(by_guild_hash) == {"data": {"__typename": "Query"}}
    assert body_of(by_apollo_hash) == {"data": {"__typename": "Query"}}


async def test_a_bad_manifest_is_refused_whole_and_adds_nothing(settings, sources, tmp_path):
    bad = write(
        tmp_path / "bad.json",
        {sha256(VIEWER): VIEWER, sha256("query Other { __typename }"): LOGOUT},
    )

    refused = run(settings, "operations", "add", bad)

    assert refused.returncode == 1
    assert "refused; nothing was added" in refused.stderr
    assert "is not the SHA-256 of its body" in refused.stderr
    assert await list_operations(db=sources.users.db) == []


async def test_an_id_registered_with_another_body_is_refused_and_adds_nothing(
    settings, sources, tmp_path
):
    first = write(
        tmp_path / "first.json",
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{"id": "viewer", "name": "Viewer", "type": "query", "body": VIEWER}],
        },
    )
    changed = write(
        tmp_path / "changed.json",
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": "viewer", "name": "Viewer", "type": "query", "body": ROOT_NAME},
                {"id": "logout", "name": "Logout", "type": "mutation", "body": LOGOUT},
            ],
        },
    )
    assert run(settings, "operations", "add", first).returncode == 0

    refused = run(settings, "operations", "add", changed)
    removed = run(settings, "operations", "remove", "viewer", "never-added")

    assert refused.returncode == 1
    assert "registered already with another body" in refused.stderr
    assert "viewer" in refused.stderr
    assert removed.returncode == 1  # one of the two was not there
    assert "removed 1 of 2 operations" in removed.stderr
    assert await list_operations(db=sources.users.db) == []


async def test_adding_beyond_the_maximum_a_process_loads_warns(
    settings, sources, tmp_path, monkeypatch
):
    del sources
    monkeypatch.setenv("TRUSTED_OPERATIONS_MAX", "2")

    added = run(settings, "operations", "add", apollo_manifest(tmp_path), guild_manifest(tmp_path))

    assert added.returncode == 0, added.stderr
    assert "3 added" in added.stderr
    assert "more than TRUSTED_OPERATIONS_MAX (2)" in " ".join(added.stderr.split())
