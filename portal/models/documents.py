"""Receipts for card payments, numbered gap-free per reseller."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import Minor, UTCDateTime, utcnow
from portal.models.payments import Payment


class Receipt(Base):
    """Proof of one successful card payment (one per payment, immutable once issued)."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("reseller_id", "number", name="uq_receipt_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    number: Mapped[int] = mapped_column(Integer)  # gap-free per reseller
    amount_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(80))  # e.g. "Visa •••• 4242"
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    payment: Mapped[Payment] = relationship()


class ReceiptCounter(Base):
    """Last receipt number per reseller, taken under a row lock (gap-free numbering)."""

    __tablename__ = "receipt_counters"

    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)
