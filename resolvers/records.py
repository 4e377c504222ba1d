"""What the schema reads of the datasources, re-exported so the schema layer never imports
one (tests/unit/test_layers.py): the stored records it turns into types, the field tables
its types and inputs are derived from, and a trade's net PnL."""

from __future__ import annotations

from datasources import StoredField
from datasources.analytics import ActivityEventRecord, DailyMetricRecord
from datasources.credentials import CLIENT_ID, SECRET_FIELDS, CredentialsRecord
from datasources.strategies import EDITABLE as STRATEGY_EDITABLE
from datasources.strategies import FIELDS as STRATEGY_FIELDS
from datasources.strategies import StrategyRecord
from datasources.trades import FIELDS as TRADE_FIELDS
from datasources.trades import Partition, TradeFilter, TradeRecord, net_pnl
from datasources.users import EDITABLE as USER_EDITABLE
from datasources.users import FIELDS as USER_FIELDS
from datasources.users import UserRecord

__all__ = [
    "CLIENT_ID",
    "SECRET_FIELDS",
    "STRATEGY_EDITABLE",
    "STRATEGY_FIELDS",
    "TRADE_FIELDS",
    "USER_EDITABLE",
    "USER_FIELDS",
    "ActivityEventRecord",
    "CredentialsRecord",
    "DailyMetricRecord",
    "Partition",
    "StoredField",
    "StrategyRecord",
    "TradeFilter",
    "TradeRecord",
    "UserRecord",
    "net_pnl",
]
