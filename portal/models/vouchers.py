"""Top-up cards (vouchers) and card codes with their recharge history."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import BigID, Minor, UTCDateTime, str_enum, utcnow


class CardStatus(enum.StrEnum):
    NEW = "new"
    ACTIVATED = "activated"
    EXPIRED = "expired"


class BatchStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class TopupCardBatch(Base):
    __tablename__ = "topup_card_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"), index=True)
    series: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int] = mapped_column(Integer)
    generated: Mapped[int] = mapped_column(Integer, default=0)
    amount_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    pin_length: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[BatchStatus] = mapped_column(str_enum(BatchStatus), default=BatchStatus.RUNNING)
    error: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TopupCard(Base):
    """A voucher. The PIN is kept as a keyed hash (lookup) and encrypted (reveal)."""

    __tablename__ = "topup_cards"
    __table_args__ = (
        # A PIN is unique among live (new) cards.
        Index(
            "uq_topup_cards_live_pin",
            "pin_hash",
            unique=True,
            sqlite_where=text("status = 'new'"),
            postgresql_where=text("status = 'new'"),
        ),
        Index("ix_topup_cards_pin_hash", "pin_hash"),
        Index("ix_topup_cards_reseller_id", "reseller_id", "id"),
        Index("ix_topup_cards_status_expires", "status", "expires_at"),
        Index("ix_topup_cards_created", "created_at", "id"),
        # Keyset pages of one reseller's cards (a batch shares one created_at, so id breaks ties)
        # and the count of live PINs per length (the guessability check).
        Index("ix_topup_cards_reseller_created", "reseller_id", "created_at", "id"),
        Index("ix_topup_cards_status_pin_length", "status", "pin_length"),
        # Keyset sorting by Amount, Status and PIN length over a million cards (bench: 0.5-2 s
        # per page without them, ~0.1 s with them, most of it the total count).
        Index("ix_topup_cards_amount_id", "amount_minor", "id"),
        Index("ix_topup_cards_status_id", "status", "id"),
        Index("ix_topup_cards_pin_length_id", "pin_length", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("topup_card_batches.id"), index=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    series: Mapped[str] = mapped_column(String(20), index=True)
    amount_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    pin_hash: Mapped[str] = mapped_column(String(64))
    pin_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    pin_length: Mapped[int] = mapped_column(Integer)
    status: Mapped[CardStatus] = mapped_column(str_enum(CardStatus), default=CardStatus.NEW)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))


class CardCode(Base):
    """A calling-card code of a customer's extension, with its own credit."""

    __tablename__ = "card_codes"
    __table_args__ = (UniqueConstraint("reseller_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    extension: Mapped[str] = mapped_column(String(40), default="")
    code: Mapped[str] = mapped_column(String(20))
    # Unlimited is an explicit state; credit_minor is then None.
    unlimited: Mapped[bool] = mapped_column(Boolean, default=False)
    credit_minor: Mapped[int | None] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recharges: Mapped[list[CardCodeRecharge]] = relationship(
        order_by="CardCodeRecharge.id", viewonly=True
    )


class CardCodeRecharge(Base):
    __tablename__ = "card_code_recharges"
    __table_args__ = (Index("ix_card_code_recharges_code_created", "card_code_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    card_code_id: Mapped[int] = mapped_column(ForeignKey("card_codes.id"))
    order_number: Mapped[str] = mapped_column(String(60))
    credit_added_minor: Mapped[int | None] = mapped_column(Minor)  # None: set to Unlimited
    credit_left_minor: Mapped[int | None] = mapped_column(Minor)  # None: Unlimited
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CardCodeCharge(Base):
    """A call charged to a card code's credit by the switch; the first answer is replayed."""

    __tablename__ = "card_code_charges"
    __table_args__ = (
        UniqueConstraint("card_code_id", "idempotency_key", name="uq_card_code_charge_key"),
        Index("ix_card_code_charges_code_id", "card_code_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    card_code_id: Mapped[int] = mapped_column(ForeignKey("card_codes.id"))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(Minor)
    description: Mapped[str] = mapped_column(String(200))
    status_code: Mapped[int] = mapped_column(Integer)
    credit_left_minor: Mapped[int | None] = mapped_column(Minor)  # None: Unlimited
    response_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
