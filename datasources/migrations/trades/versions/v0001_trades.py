"""the trades table and its indexes (as before versions)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from datasources._sql import BigIntId, Money, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(24), nullable=False),
        sa.Column("strategy_id", sa.String(24), nullable=False),
        sa.Column("strategy_name", sa.String(100), nullable=False),
        sa.Column("instrument", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("entry_price", Money(), nullable=False),
        sa.Column("exit_price", Money()),
        sa.Column("entry_time", UtcDateTime(), nullable=False),
        sa.Column("exit_time", UtcDateTime()),
        sa.Column("pnl", Money()),
        sa.Column("fees", Money(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("broker", sa.String(32)),
        sa.Column("environment", sa.String(8)),
    )
    op.create_index("ix_trades_user_entry", "trades", ["user_id", sa.text("entry_time DESC")])
    op.create_index(
        "ix_trades_strategy_entry", "trades", ["strategy_id", sa.text("entry_time DESC")]
    )
    op.create_index(
        "ix_trades_user_strategy_name_entry",
        "trades",
        ["user_id", "strategy_name", sa.text("entry_time DESC")],
    )


def downgrade() -> None:
    op.drop_table("trades")  # its indexes with it
