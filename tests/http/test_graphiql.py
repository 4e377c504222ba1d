"""GraphiQL served by the gateway itself: vendored assets checked against their manifest,
served from its own origin with long caching, and a page whose policy allows nothing else.

The page working in a browser with the network cut is tests/clients/test_graphiql.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import graphiql
from gateway.app import create_app
from tests.helpers import app_client, error_codes

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def policy_of(header: str) -> dict[str, str]:
    policy = {}
    for directive in header.split("; "):
        name, _, value = directive.partition(" ")
        policy[name] = value
    return policy


@pytest.fixture
def vendor_copy(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """A copy of the vendored files the module reads instead, its caches emptied."""
    copy = tmp_path / "vendor"
    shutil.copytree(graphiql.VENDOR, copy)
    monkeypatch.setattr(graphiql, "VENDOR", copy)
    monkeypatch.setattr(graphiql, "MANIFEST", copy / "manifest.json")
    for cached in (graphiql.assets, graphiql.served_assets, graphiql.page):
        cached.cache_clear()
    yield copy
    for cached in (graphiql.assets, graphiql.served_assets, graphiql.page):
        cached.cache_clear()


# --- The vendored files -------------------------------------------------------------------------


def test_every_vendored_file_matches_its_sha384_in_the_manifest():
    manifest = json.loads(graphiql.MANIFEST.read_text())["files"]
    on_disk = {path.name for path in graphiql.VENDOR.iterdir()} - {"manifest.json"}

    assert on_disk == set(manifest), "a vendored file is missing from the manifest, or extra"
    for name, entry in manifest.items():
        body = (graphiql.VENDOR / name).read_bytes()
        digest = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
        assert digest == entry["integrity"], name
        assert EXACT_VERSION.match(entry["version"]), entry  # pinned, no range
        assert entry["tarball"].startswith("sha512-"), entry  # the registry's integrity


def test_the_page_loads_every_vendored_file_and_graphiql_with_its_explorer_plugin():
    manifest = json.loads(graphiql.MANIFEST.read_text())["files"]
    packages = {entry["package"] for entry in manifest.values()}

    assert set(manifest) <= set(graphiql.STYLES + graphiql.SCRIPTS)
    assert {"graphiql", "@graphiql/plugin-explorer", "react", "react-dom"} <= packages


def test_a_vendored_file_that_no_longer_matches_stops_the_start(settings, vendor_copy):
    script = vendor_copy / "graphiql.min.js"
    script.write_bytes(script.read_bytes().replace(b"GraphiQL", b"GraphiQl", 1))

    with pytest.raises(graphiql.AssetIntegrityError, match=r"graphiql\.min\.js"):
        create_app(settings.model_copy(update={"graphiql": True}))


def test_a_missing_vendored_file_stops_the_start(settings, vendor_copy):
    (vendor_copy / "react.production.min.js").unlink()

    with pytest.raises(graphiql.AssetIntegrityError, match="missing"):
        create_app(settings.model_copy(update={"graphiql": True}))


def test_without_graphiql_the_vendored_files_are_not_even_read(settings, vendor_copy):
    (vendor_copy / "react.production.min.js").unlink()

    app = create_app(settings.model_copy(update={"graphiql": False}))

    assert not any(
        getattr(route, "path", "").startswith(graphiql.ASSETS_PATH) for route in app.routes
    )


# --- The page and its assets over HTTP ----------------------------------------------------------


async def test_the_page_loads_only_assets_of_its_own_origin_each_with_its_integrity(client):
    page = await client.get("/graphql", headers=BROWSER)

    assert page.status_code == 200
    assert "unpkg" not in page.text
    assert "<style" not in page.text
    assert re.findall(r"<script>", page.text) == []  # no inline script
    urls = re.findall(r'(?:src|href)="(graphiql/assets/[^"]+)" integrity="([^"]+)"', page.text)
    assert len(urls) == len(graphiql.STYLES + graphiql.SCRIPTS)
    for url, integrity in urls:
        asset = await client.get(f"/{url}")
        assert asset.status_code == 200, url
        digest = "sha384-" + base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert digest == integrity, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-type"].startswith(("text/javascript", "text/css"))
        assert asset.headers["x-content-type-options"] == "nosniff"


async def test_the_page_allows_scripts_styles_and_requests_of_its_own_origin_only(client):
    response = await client.get("/graphql", headers=BROWSER)

    policy = policy_of(response.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-frame-options"] == "DENY"
    assert not any("http" in value for value in policy.values())
    # The page itself may not be cached: it names the current assets.
    assert response.headers["cache-control"] == "no-store"


async def test_an_unknown_asset_is_a_coded_404(client):
    response = await client.get(f"{graphiql.ASSETS_PATH}/graphiql.min.js")

    assert response.status_code == 404
    assert error_codes(response.json()) == ["NOT_FOUND"]
    assert response.headers["cache-control"] == "no-store"


async def test_in_production_the_assets_are_not_served_either(settings, sources):
    async with app_client(settings, gateway_env="production") as http:
        page = await http.get("/graphql", headers=BROWSER)
        name = next(iter(graphiql.served_assets()))
        asset = await http.get(f"{graphiql.ASSETS_PATH}/{name}")

    assert page.status_code == 404
    assert asset.status_code == 404
