"""Plans, their licenses, add-ons, subscriptions and top-up products."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base
from portal.models.base import Minor, UTCDateTime, str_enum, utcnow


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    price_minor: Mapped[int] = mapped_column(Minor)  # per month
    currency: Mapped[str] = mapped_column(String(3))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    licenses: Mapped[list[PlanLicense]] = relationship(
        back_populates="plan", order_by="PlanLicense.sort_order", cascade="all, delete-orphan"
    )


class PlanLicense(Base):
    """How many units of a service (e.g. Extensions) a plan includes."""

    __tablename__ = "plan_licenses"
    __table_args__ = (UniqueConstraint("plan_id", "service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    service: Mapped[str] = mapped_column(String(40))  # stable key, e.g. "extensions"
    label: Mapped[str] = mapped_column(String(120))
    limit: Mapped[int] = mapped_column(Integer)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    plan: Mapped[Plan] = relationship(back_populates="licenses")


class AddOn(Base):
    """An in-app purchase that raises one service's limit."""

    __tablename__ = "addons"

    id: Mapped[int] = mapped_column(primary_key=True)
    service: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120))
    units: Mapped[int] = mapped_column(Integer, default=1)  # limit added per purchase
    price_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    anchor_day: Mapped[int] = mapped_column(Integer)  # billing period anchor (1-31)
    started_on: Mapped[date] = mapped_column(Date)
    status: Mapped[SubscriptionStatus] = mapped_column(
        str_enum(SubscriptionStatus), default=SubscriptionStatus.ACTIVE
    )

    plan: Mapped[Plan] = relationship()


class AccountAddOn(Base):
    """Units of an add-on bought by an account (raises the limit of its service)."""

    __tablename__ = "account_addons"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    addon_id: Mapped[int] = mapped_column(ForeignKey("addons.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    price_paid_minor: Mapped[int] = mapped_column(Minor)
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    addon: Mapped[AddOn] = relationship()


class LicenseUsage(Base):
    """How many units of a service an account uses now."""

    __tablename__ = "license_usage"
    __table_args__ = (UniqueConstraint("account_id", "service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    service: Mapped[str] = mapped_column(String(40))
    used: Mapped[int] = mapped_column(Integer, default=0)


class TopupProduct(Base):
    __tablename__ = "topup_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    amount_minor: Mapped[int] = mapped_column(Minor)
    currency: Mapped[str] = mapped_column(String(3))
    label: Mapped[str] = mapped_column(String(120), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
