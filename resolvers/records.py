"""The stored records the schema turns into types, the strategy field table (`FIELDS`,
`EDITABLE`) its types and inputs are derived from, and a trade's net PnL: re-exported so
the schema layer never imports a datasource (tests/unit/test_layers.py)."""

from __future__ import annotations

from datasources.analytics import ActivityEventRecord, DailyMetricRecord
from datasources.credentials import CredentialsRecord
from datasources.strategies import EDITABLE, FIELDS, StrategyRecord
from datasources.trades import Partition, TradeFilter, TradeRecord, net_pnl
from datasources.users import UserRecord

__all__ = [
    "EDITABLE",
    "FIELDS",
    "ActivityEventRecord",
    "CredentialsRecord",
    "DailyMetricRecord",
    "Partition",
    "StrategyRecord",
    "TradeFilter",
    "TradeRecord",
    "UserRecord",
    "net_pnl",
]
