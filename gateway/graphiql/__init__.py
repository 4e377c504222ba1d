"""GraphiQL, served by the gateway itself: no third-party asset, so it works offline.

The page at `/graphql` (a browser's GET) loads:

- React, GraphiQL and its explorer plugin, vendored from the npm registry by
  `scripts/vendor-graphiql` into `vendor/`, pinned and listed in `vendor/manifest.json`
  with each file's sha384. `assets()` refuses to load a file that no longer matches
  (`create_app` loads them at start, so a tampered or truncated file stops the process),
  and the page's `integrity=` attributes carry the same hashes for the browser to check;
- its own script and stylesheet (`static/`): a sign-in bar that calls the `login`
  mutation and keeps the tokens in memory only.

Every asset is served under `ASSETS_PATH` by a name holding a hash of its content, so it
may be cached for a year: another version is another name. The page's
Content-Security-Policy allows scripts and styles from its own origin and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

HERE = Path(__file__).parent
VENDOR = HERE / "vendor"
STATIC = HERE / "static"
MANIFEST = VENDOR / "manifest.json"
ASSETS_PATH = "/graphiql/assets"
# The order the page loads them in: React before GraphiQL, GraphiQL before its plugin,
# the page's own script last.
STYLES = ("graphiql.min.css", "plugin-explorer.css", "page.css")
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
    "page.js",
)
CACHE_FOREVER = "public, max-age=31536000, immutable"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",  # GraphiQL's fonts are data: URLs inside its stylesheet
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


class AssetIntegrityError(Exception):
    """Raised when a vendored GraphiQL file is missing or its bytes no longer match the
    sha384 that `vendor/manifest.json` records for it."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file the page loads: its served name, bytes, media type and SRI hash."""

    name: str
    body: bytes
    media_type: str
    integrity: str

    @property
    def url(self) -> str:
        # Relative to the page at /graphql, so a gateway behind a path prefix still works.
        return f"{ASSETS_PATH.lstrip('/')}/{self.name}"


def sri(body: bytes) -> str:
    """The Subresource Integrity value of `body` (sha384)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def _asset(file_name: str, body: bytes, integrity: str | None = None) -> Asset:
    """The asset of `body` (`integrity`: its `sri`, when computed already)."""
    path = PurePosixPath(file_name)
    # "graphiql.min.js" -> "graphiql.min.3f9c2a1b7d4e6f80.js": the content names the file.
    name = f"{path.stem}.{hashlib.sha256(body).hexdigest()[:16]}{path.suffix}"
    media_type = _MEDIA_TYPES[path.suffix]
    return Asset(name=name, body=body, media_type=media_type, integrity=integrity or sri(body))


def verified_vendor_files() -> dict[str, Asset]:
    """Every file the manifest lists, by its name in `vendor/`, each checked against its
    sha384; AssetIntegrityError names the first that is missing or differs."""
    manifest = json.loads(MANIFEST.read_text())
    files: dict[str, Asset] = {}
    for name, entry in manifest["files"].items():
        file = VENDOR / name
        if not file.is_file():
            raise AssetIntegrityError(
                f"GraphiQL asset {name} is missing: run scripts/vendor-graphiql"
            )
        body = file.read_bytes()
        integrity = sri(body)
        if integrity != entry["integrity"]:
            raise AssetIntegrityError(
                f"GraphiQL asset {name} does not match its sha384 in {MANIFEST.name} "
                f"({entry['package']}@{entry['version']} {entry['path']}): "
                "run scripts/vendor-graphiql"
            )
        # The sha384 just checked is its SRI hash: the 4 MB are not hashed a second time.
        files[name] = _asset(name, body, integrity)
    return files


@cache
def assets() -> dict[str, Asset]:
    """Every asset of the page by its file name, the vendored ones verified; loaded once."""
    files = verified_vendor_files()
    for own in (*STYLES, *SCRIPTS):
        if own not in files:
            files[own] = _asset(own, (STATIC / own).read_bytes())
    return files


@cache
def served_assets() -> dict[str, Asset]:
    """The same assets by the name they are served under."""
    return {asset.name: asset for asset in assets().values()}


@cache
def page() -> str:
    """The GraphiQL page: no inline script or style, every asset with its integrity."""
    loaded = assets()
    styles = "\n".join(
        f'    <link rel="stylesheet" href="{html.escape(loaded[name].url)}" '
        f'integrity="{loaded[name].integrity}">'
        for name in STYLES
    )
    scripts = "\n".join(
        f'    <script src="{html.escape(loaded[name].url)}" '
        f'integrity="{loaded[name].integrity}"></script>'
        for name in SCRIPTS
    )
    return _PAGE.format(styles=styles, scripts=scripts)


_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>GraphiQL · trading gateway</title>
    <link rel="icon" href="data:,">
{styles}
  </head>
  <body>
    <header id="session">
      <form id="sign-in" autocomplete="on">
        <strong>Trading gateway</strong>
        <label>Email <input type="email" name="email" autocomplete="username" required></label>
        <label>Password
          <input type="password" name="password" autocomplete="current-password" required>
        </label>
        <button type="submit">Sign in</button>
      </form>
      <div id="signed-in" hidden>
        <strong>Trading gateway</strong>
        <span>Signed in as <b id="viewer"></b>; the token is kept in this tab's memory
          only.</span>
        <button type="button" id="sign-out">Sign out</button>
      </div>
      <output id="session-status" role="status"></output>
    </header>
    <div id="graphiql">Loading GraphiQL...</div>
{scripts}
  </body>
</html>
"""
