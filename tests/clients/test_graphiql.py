"""The gateway's own GraphiQL in headless Chromium, offline: every request to anything but
the served gateway is blocked, and the page still signs in and runs the dashboard."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.clients.conftest import run_node
from tests.helpers import NOW, PASSWORD, make_strategy, make_trades, make_user, trade_row
from tests.serving import Server


async def test_graphiql_signs_in_and_shows_the_dashboard_with_only_the_gateway_reachable(
    served: Server, sources, chromium, tmp_path: Path
):
    user = await make_user(sources, email="graphiql@example.com", first_name="Grace")
    strategy = await make_strategy(sources, user, status="ACTIVE", name="Mean reversion")
    await make_trades(
        sources,
        [trade_row(strategy, entry_time=NOW - timedelta(hours=hours)) for hours in (2, 3, 4)],
    )
    screenshot = tmp_path / "graphiql.png"

    seen = await run_node(
        "graphiql.mjs", served.base_url, user.email, PASSWORD, str(screenshot), seconds=90
    )

    # Nothing but the gateway was even asked for: no CDN, no font, no telemetry.
    assert seen["blocked"] == []
    assert seen["served"], "the page loaded nothing"
    assert all(
        path == "/graphql" or path.startswith("/graphiql/assets/") for path in seen["served"]
    )
    assert seen["violations"] == []
    assert seen["pageErrors"] == []
    # Signed in through the page's form; the answer on the page is the viewer's dashboard.
    assert seen["signedInAs"] == "graphiql@example.com"
    assert "errors" not in seen["answer"]
    dashboard = seen["answer"]["data"]["dashboard"]
    assert dashboard["user"] == {
        "email": "graphiql@example.com",
        "firstName": "Grace",
        "lastName": "User",
    }
    assert dashboard["strategyCounts"]["active"] == 1
    assert Decimal(dashboard["pnl"]["allTime"]) == Decimal("14.70")  # 3 x (5.00 - 0.10)
    assert [trade["instrument"] for trade in dashboard["recentTrades"]] == ["BTCUSDT"] * 3
    # The token stayed in the page's memory: not in localStorage, sessionStorage, a cookie.
    assert seen["tokenSeen"]
    assert not seen["tokenStored"]
    assert seen["explorer"]
    assert screenshot.stat().st_size > 10_000
    # How the README's docs/graphiql.png is made: GRAPHIQL_SCREENSHOT=docs/graphiql.png.
    if target := os.environ.get("GRAPHIQL_SCREENSHOT"):
        shutil.copy(screenshot, target)
