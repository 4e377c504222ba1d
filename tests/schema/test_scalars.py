"""The custom scalars keep the specifications their `@specifiedBy` names: RFC 3339 for Date
and DateTime (answers in UTC), a plain decimal string for Decimal."""

from __future__ import annotations

import re

import pytest

from tests.helpers import data_of, error_codes, gql, signed_in

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00")
ANALYTICS = "query($from: Date) { analytics(from: $from) { netPnl from } }"
TRADES = "query($from: DateTime) { trades(filter: {from: $from}) { totalCount } }"


async def test_a_date_time_is_answered_as_an_rfc_3339_utc_time(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    body = await gql(client, "{ me { createdAt updatedAt } }", token=token)

    me = data_of(body)["me"]
    assert RFC3339_UTC.fullmatch(me["createdAt"]), me
    assert RFC3339_UTC.fullmatch(me["updatedAt"]), me


async def test_an_rfc_3339_full_date_and_a_zulu_date_time_are_accepted(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    analytics = await gql(client, ANALYTICS, {"from": "2026-02-01"}, token=token)
    trades = await gql(client, TRADES, {"from": "2026-02-01T09:30:00.5Z"}, token=token)

    assert data_of(analytics)["analytics"] == {"netPnl": "0", "from": "2026-02-01"}
    assert data_of(trades)["trades"] == {"totalCount": 0}


@pytest.mark.parametrize("day", ["20260201", "2026-W05-7", "2026-02-30", "01/02/2026", 20260201])
async def test_a_date_that_is_not_an_rfc_3339_full_date_is_bad_user_input(
    client, sources, settings, day
):
    _user, token = await signed_in(sources, settings)

    body = await gql(client, ANALYTICS, {"from": day}, token=token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "data" not in body or body["data"] is None


@pytest.mark.parametrize(
    "moment", ["2026-02-01", "2026-02-01T09:30", "20260201T093000Z", "yesterday", 1769938200]
)
async def test_a_date_time_that_is_not_rfc_3339_is_bad_user_input(
    client, sources, settings, moment
):
    _user, token = await signed_in(sources, settings)

    body = await gql(client, TRADES, {"from": moment}, token=token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
