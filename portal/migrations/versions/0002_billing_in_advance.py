"""billing in advance: due dates, reminders, credit notes, payments for an invoice

Revision ID: 0002
Revises: 0001
"""

from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from alembic import op

import portal.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("reminders_sent", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("billed_until", portal.models.base.UTCDateTime(), nullable=True)
        )
    _backfill_invoices()
    with op.batch_alter_table("invoice_counters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_credit_note", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_payments_invoice_id", "invoices", ["invoice_id"], ["id"])
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reseller_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", portal.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["reseller_id"], ["resellers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("invoice_id"),
        sa.UniqueConstraint("reseller_id", "number"),
    )
    with op.batch_alter_table("credit_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credit_notes_account_id"), ["account_id"], unique=False
        )


def _backfill_invoices() -> None:
    """Invoices of the old model billed their period in arrears: [period start, period end].

    Their window ends after their period (so the first new invoice does not bill that usage
    again); they fall due 14 days after they were issued.
    """
    invoices = sa.table(
        "invoices",
        sa.column("id", sa.Integer),
        sa.column("period_end", sa.Date),
        sa.column("issued_at", portal.models.base.UTCDateTime),
        sa.column("due_on", sa.Date),
        sa.column("billed_until", portal.models.base.UTCDateTime),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(invoices.c.id, invoices.c.period_end, invoices.c.issued_at))
    for invoice_id, period_end, issued_at in rows.all():
        after = datetime.combine(period_end + timedelta(days=1), time.min, tzinfo=UTC)
        bind.execute(
            invoices.update()
            .where(invoices.c.id == invoice_id)
            .values(billed_until=after, due_on=issued_at.date() + timedelta(days=14))
        )


def downgrade() -> None:
    with op.batch_alter_table("credit_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_notes_account_id"))
    op.drop_table("credit_notes")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_payments_invoice_id", type_="foreignkey")
        batch_op.drop_column("invoice_id")
    with op.batch_alter_table("invoice_counters", schema=None) as batch_op:
        batch_op.drop_column("last_credit_note")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("billed_until")
        batch_op.drop_column("reminders_sent")
        batch_op.drop_column("due_on")
