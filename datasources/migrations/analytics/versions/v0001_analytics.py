"""daily_strategy_metrics and activity_events with their indexes (as before versions)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from datasources._sql import BigIntId, Money, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_strategy_metrics",
        sa.Column("user_id", sa.String(24), nullable=False),
        sa.Column("strategy_id", sa.String(24), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("gross_pnl", Money(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("net_pnl", Money(), nullable=False),
        sa.Column("volume", Money(), nullable=False),
        sa.PrimaryKeyConstraint("strategy_id", "day", name="pk_daily_strategy_metrics"),
    )
    op.create_index("ix_daily_metrics_user_day", "daily_strategy_metrics", ["user_id", "day"])
    op.create_table(
        "activity_events",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(24), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64)),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("event_id", sa.String(32)),
    )
    op.create_index("ix_activity_user_at", "activity_events", ["user_id", sa.text("at DESC")])
    op.create_index("ux_activity_event_id", "activity_events", ["event_id"], unique=True)


def downgrade() -> None:
    op.drop_table("activity_events")
    op.drop_table("daily_strategy_metrics")
