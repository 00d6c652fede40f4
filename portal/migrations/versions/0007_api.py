"""funds_checks: the durable queue of after-debit checks

Revision ID: 0007_api
Revises: 0003_payment_outcomes
Create Date: 2026-12-02 16:20:00
"""

import sqlalchemy as sa
from alembic import op

import portal.models.base

revision = "0007_api"
down_revision = "0007_ux"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "funds_checks",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("recharge", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("queued_at", portal.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("funds_checks")
