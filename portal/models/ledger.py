"""Ledger entries and reserve credit (written only by portal.ledger)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import BigID, Minor, UTCDateTime, str_enum, utcnow


class EntryKind(enum.StrEnum):
    TOPUP = "topup"
    AUTO_RECHARGE = "auto_recharge"
    VOUCHER = "voucher"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    PLAN_CHANGE = "plan_change"
    ADDON = "addon"
    USAGE = "usage"
    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    CHARGEBACK_REVERSAL = "chargeback_reversal"
    PLAN_FEE = "plan_fee"
    CREDIT_NOTE = "credit_note"


class LedgerEntry(Base):
    """One immutable change to an account's money."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_ledger_account_idem"),
        Index("ix_ledger_account_id_desc", "account_id", "id"),
        Index("ix_ledger_account_kind_id", "account_id", "kind", "id"),
        Index("ix_ledger_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[EntryKind] = mapped_column(str_enum(EntryKind))
    amount_minor: Mapped[int] = mapped_column(Minor)
    balance_after_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(300))
    reference: Mapped[str] = mapped_column(String(120), default="")
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GrantStatus(enum.StrEnum):
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"


class ReserveGrant(Base):
    """Reserve credit: usable only for in-app purchases, expires after a month."""

    __tablename__ = "reserve_grants"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_reserve_account_idem"),
        Index("ix_reserve_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(Minor)
    remaining_minor: Mapped[int] = mapped_column(Minor)
    expired_minor: Mapped[int] = mapped_column(Minor, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(200))
    status: Mapped[GrantStatus] = mapped_column(str_enum(GrantStatus), default=GrantStatus.ACTIVE)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str] = mapped_column(String(120))

    uses: Mapped[list[ReserveUse]] = relationship(order_by="ReserveUse.id")


class ReserveUse(Base):
    __tablename__ = "reserve_uses"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("reserve_grants.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(Minor)
    purpose: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
