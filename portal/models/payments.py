"""Payment cards (held in Stripe), payments, webhook events and auto-recharge."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import BigID, Minor, UTCDateTime, str_enum, utcnow


class CardRole(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    OTHER = "other"


class PaymentCard(Base):
    """A card that lives in Stripe; we keep only its id, brand, last 4, expiry and fingerprint."""

    __tablename__ = "payment_cards"
    __table_args__ = (Index("ix_payment_cards_account_fingerprint", "account_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    stripe_payment_method_id: Mapped[str] = mapped_column(String(64), unique=True)
    brand: Mapped[str] = mapped_column(String(30))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    role: Mapped[CardRole] = mapped_column(str_enum(CardRole), default=CardRole.OTHER)
    # Stripe's card fingerprint: the same card number gives the same value (never the number).
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentPurpose(enum.StrEnum):
    TOPUP = "topup"
    AUTO_RECHARGE = "auto_recharge"
    INVOICE = "invoice"
    MANUAL = "manual"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUIRES_ACTION = "requires_action"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    WON = "won"
    LOST = "lost"


# Every status reached only after the money came in (the payment was credited once).
PAID_STATUSES = frozenset(
    {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.DISPUTED,
        PaymentStatus.WON,
        PaymentStatus.LOST,
    }
)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("payment_cards.id", ondelete="SET NULL"))
    purpose: Mapped[PaymentPurpose] = mapped_column(str_enum(PaymentPurpose))
    amount_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus), default=PaymentStatus.PENDING
    )
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    failure_message: Mapped[str] = mapped_column(String(300), default="")
    refunded_minor: Mapped[int] = mapped_column(Minor, default=0)
    # Refunded per Stripe's charge total beyond the refunds we know by id (see outcomes.py).
    unattributed_refund_minor: Mapped[int] = mapped_column(Minor, default=0)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which card paid ("primary"/"secondary"), and the customer's link to finish 3-D Secure.
    paid_by_role: Mapped[str] = mapped_column(String(10), default="")
    needs_authentication: Mapped[bool] = mapped_column(Boolean, default=False)
    order_number: Mapped[str] = mapped_column(String(60), default="")
    # The invoice a "Pay now" payment is for: it is allocated there first.
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    card: Mapped[PaymentCard | None] = relationship()

    @property
    def paid(self) -> bool:
        return self.status in PAID_STATUSES


class RefundStatus(enum.StrEnum):
    REQUESTED = "requested"  # ours: asked Stripe, no answer yet (moves no money)
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class PaymentRefund(Base):
    """A refund Stripe told us about (or that an admin asked for), one row per Stripe refund id.

    `payment_id` is empty while the refund's payment is not known yet (the refund event
    overtook the payment's own events); it is linked as soon as the payment learns its ids.
    A `cumulative` row holds a charge's refunded total when Stripe sent only the total.
    """

    __tablename__ = "payment_refunds"
    __table_args__ = (
        Index("ix_payment_refunds_charge", "stripe_charge_id"),
        Index("ix_payment_refunds_intent", "stripe_payment_intent_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    stripe_refund_id: Mapped[str] = mapped_column(String(80), unique=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64))
    cumulative: Mapped[bool] = mapped_column(Boolean, default=False)
    amount_minor: Mapped[int] = mapped_column(Minor, default=0)
    status: Mapped[RefundStatus] = mapped_column(
        str_enum(RefundStatus), default=RefundStatus.PENDING
    )
    reason: Mapped[str] = mapped_column(String(300), default="")
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # An admin's refund request: one Stripe refund per submitted form.
    idempotency_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PaymentDispute(Base):
    """A dispute (chargeback) of a payment's charge, one row per Stripe dispute id."""

    __tablename__ = "payment_disputes"
    __table_args__ = (
        Index("ix_payment_disputes_charge", "stripe_charge_id"),
        Index("ix_payment_disputes_intent", "stripe_payment_intent_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(80), unique=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(Minor, default=0)
    status: Mapped[str] = mapped_column(String(30), default="needs_response")
    reason: Mapped[str] = mapped_column(String(100), default="")
    withdrawn_minor: Mapped[int] = mapped_column(Minor, default=0)
    reinstated_minor: Mapped[int] = mapped_column(Minor, default=0)
    admins_told: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """Every Stripe event we accepted, stored before it is processed."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(80), unique=True)
    type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "received", "processed", "ignored" (a type we do not handle) or "failed" (see error).
    status: Mapped[str] = mapped_column(String(12), default="received")
    error: Mapped[str] = mapped_column(String(500), default="")


class AutoRechargeSetting(Base):
    __tablename__ = "auto_recharge_settings"
    __table_args__ = (Index("ix_autorecharge_enabled_threshold", "enabled", "threshold_minor"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    threshold_minor: Mapped[int] = mapped_column(Minor, default=0)
    amount_minor: Mapped[int] = mapped_column(Minor, default=0)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AttemptStatus(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AutoRechargeAttempt(Base):
    __tablename__ = "auto_recharge_attempts"
    __table_args__ = (Index("ix_attempts_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount_minor: Mapped[int] = mapped_column(Minor)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("payment_cards.id", ondelete="SET NULL"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    status: Mapped[AttemptStatus] = mapped_column(
        str_enum(AttemptStatus), default=AttemptStatus.IN_FLIGHT
    )
    message: Mapped[str] = mapped_column(String(300), default="")
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    card: Mapped[PaymentCard | None] = relationship()
