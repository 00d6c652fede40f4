"""Resellers, customer classes, customer accounts and users."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import BigID, Minor, UTCDateTime, str_enum, utcnow


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    RESELLER_ADMIN = "reseller_admin"
    OPERATOR = "operator"


class BillingModel(enum.StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class TransferSetting(enum.StrEnum):
    CLASS = "class"  # As defined by the customer class
    YES = "yes"
    NO = "no"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Reseller(Base):
    __tablename__ = "resellers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="GBP")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerClass(Base):
    __tablename__ = "customer_classes"
    __table_args__ = (UniqueConstraint("reseller_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    transfers_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Maximum possible temporary credit limit increase: an amount and/or a percentage
    # of the permanent limit, and the longest validity in days.
    max_increase_minor: Mapped[int | None] = mapped_column(Minor)
    max_increase_percent: Mapped[int | None] = mapped_column(Integer)
    max_increase_days: Mapped[int | None] = mapped_column(Integer)
    default_warning_thresholds: Mapped[str] = mapped_column(String(400), default="")

    reseller: Mapped[Reseller] = relationship()


class Account(Base):
    """A customer account: the thing that has a balance."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_reseller_name", "reseller_id", "name"),
        # The auto-recharge sweep looks only at accounts at or below the highest threshold.
        Index("ix_accounts_balance", "balance_minor"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id"), index=True)
    customer_class_id: Mapped[int | None] = mapped_column(ForeignKey("customer_classes.id"))
    number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    currency: Mapped[str] = mapped_column(String(3))
    billing_model: Mapped[BillingModel] = mapped_column(str_enum(BillingModel))
    status: Mapped[AccountStatus] = mapped_column(
        str_enum(AccountStatus), default=AccountStatus.ACTIVE
    )
    # Cached sum of ledger entries; changed only by portal.ledger under a row lock.
    balance_minor: Mapped[int] = mapped_column(Minor, default=0)
    credit_limit_minor: Mapped[int] = mapped_column(Minor, default=0)
    temp_increase_minor: Mapped[int | None] = mapped_column(Minor)
    temp_increase_percent: Mapped[int | None] = mapped_column(Integer)
    temp_increase_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warning_thresholds: Mapped[str | None] = mapped_column(String(400))
    # Thresholds already notified for the current crossing (comma-separated raw values).
    warnings_fired: Mapped[str] = mapped_column(String(400), default="")
    transfers: Mapped[TransferSetting] = mapped_column(
        str_enum(TransferSetting), default=TransferSetting.CLASS
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    reseller: Mapped[Reseller] = relationship()
    customer_class: Mapped[CustomerClass | None] = relationship()


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(str_enum(Role))
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("resellers.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    can_redeem_vouchers: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Changing it signs out every session of the user (part of the session id).
    session_nonce: Mapped[str] = mapped_column(String(32), default="")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Preferred language of pages and emails (a code of portal.auth.profile.LANGUAGES).
    language: Mapped[str] = mapped_column(String(10), default="en", server_default="en")
    # Two-factor sign-in: the TOTP secret encrypted with the PIN vault, set once confirmed;
    # the last time step used (a code is never accepted twice).
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    account: Mapped[Account | None] = relationship()
    reseller: Mapped[Reseller | None] = relationship()

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None and self.totp_secret is not None

    def get_id(self) -> str:
        return f"{self.id}:{self.session_nonce}"

    @property
    def is_active(self) -> bool:  # flask-login
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.RESELLER_ADMIN, Role.OPERATOR)

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR


class ApiToken(Base):
    """Bearer token for the switch API; only a hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("resellers.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiCharge(Base):
    """The first answer to an API charge, replayed for the same idempotency key."""

    __tablename__ = "api_charges"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key", name="uq_api_charge_key"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("resellers.id"), index=True)
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str] = mapped_column(String(60), default="")
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ServerSetting(Base):
    """Operator settings, e.g. default_currency and tax_rate_bp (basis points)."""

    __tablename__ = "server_settings"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(400))
