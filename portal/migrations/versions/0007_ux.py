"""payment card fingerprint (a card already on file is recognised)

Revision ID: 0007_ux
Revises: 0003_payment_outcomes
Create Date: 2026-12-02 16:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_ux'
down_revision = '0003_payment_outcomes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payment_cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=True))
        batch_op.create_index(
            'ix_payment_cards_account_fingerprint', ['account_id', 'fingerprint'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('payment_cards', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_cards_account_fingerprint')
        batch_op.drop_column('fingerprint')
