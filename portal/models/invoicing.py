"""Invoices, unallocated payments and credit limit history."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import BigID, Minor, UTCDateTime, str_enum, utcnow


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"  # open and past its due date (set by the collection job)
    PAID = "paid"
    VOID = "void"  # cancelled by a credit note


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("reseller_id", "number"),
        UniqueConstraint("account_id", "period_start", name="uq_invoice_account_period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # gap-free per reseller
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(Minor)
    tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    tax_minor: Mapped[int] = mapped_column(Minor, default=0)
    total_minor: Mapped[int] = mapped_column(Minor)
    paid_minor: Mapped[int] = mapped_column(Minor, default=0)
    status: Mapped[InvoiceStatus] = mapped_column(str_enum(InvoiceStatus))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_on: Mapped[date | None] = mapped_column(Date)
    # The end of the ledger window this invoice billed: the next invoice starts there.
    billed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    lines: Mapped[list[InvoiceLine]] = relationship(order_by="InvoiceLine.id")


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # plan_fee, addon, usage
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    amount_minor: Mapped[int] = mapped_column(Minor)


class InvoiceCounter(Base):
    """Last invoice number per reseller, taken under a row lock (gap-free numbering)."""

    __tablename__ = "invoice_counters"

    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)
    last_credit_note: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CreditNote(Base):
    """Voids one invoice; numbered gap-free per reseller like invoices. Immutable."""

    __tablename__ = "credit_notes"
    __table_args__ = (UniqueConstraint("reseller_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True)
    number: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(300))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UnallocatedPayment(Base):
    """Money paid beyond the open invoices; applied to the next ones automatically."""

    __tablename__ = "unallocated_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(Minor)
    remaining_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentAllocation(Base):
    __tablename__ = "payment_allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(Minor)
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditChangeKind(enum.StrEnum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    REVERT = "revert"


class CreditLimitChange(Base):
    __tablename__ = "credit_limit_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[CreditChangeKind] = mapped_column(str_enum(CreditChangeKind))
    old_value: Mapped[str] = mapped_column(String(60))
    new_value: Mapped[str] = mapped_column(String(60))
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
