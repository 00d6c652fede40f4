"""Builders for the plan, license, reserve, voucher and transfer tests (keyword arguments)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from portal import ledger
from portal.models import (
    Account,
    AddOn,
    EntryKind,
    LicenseUsage,
    Plan,
    PlanLicense,
    ReserveGrant,
    Subscription,
    TopupCard,
    utcnow,
)
from portal.pins import PinVault

LICENSES = [("extensions", "Extensions"), ("phone_numbers", "Phone numbers")]
PLANS = {"Starter": (1000, (5, 2)), "Professional": (2500, (10, 5)), "Complete": (4500, (25, 10))}
PIN_KEY = "test-pin-key"  # tests/conftest.py TEST_CONFIG
_serials = itertools.count(1)


def make_plans(db: Session, *, currency: str = "GBP") -> dict[str, Plan]:
    plans = {}
    for order, (name, (price, limits)) in enumerate(PLANS.items()):
        plan = Plan(name=name, price_minor=price, currency=currency, sort_order=order)
        plan.licenses = [
            PlanLicense(service=service, label=label, limit=limit, sort_order=i)
            for i, ((service, label), limit) in enumerate(zip(LICENSES, limits, strict=True))
        ]
        db.add(plan)
        plans[name] = plan
    db.flush()
    return plans


def make_addon(
    db: Session,
    *,
    service: str = "extensions",
    units: int = 5,
    price_minor: int = 500,
    currency: str = "GBP",
    label: str = "5 extra extensions",
) -> AddOn:
    addon = AddOn(
        service=service, label=label, units=units, price_minor=price_minor, currency=currency
    )
    db.add(addon)
    db.flush()
    return addon


def subscribe(
    db: Session,
    account: Account,
    plan: Plan,
    *,
    anchor_day: int = 1,
    usage: dict[str, int] | None = None,
    started_on: date | None = None,
) -> Subscription:
    """Subscribed since the start of this month unless told (no older fees to catch up)."""
    subscription = Subscription(
        account_id=account.id,
        plan_id=plan.id,
        anchor_day=anchor_day,
        started_on=started_on or utcnow().date().replace(day=1),
    )
    db.add(subscription)
    for service, used in (usage or {}).items():
        db.add(LicenseUsage(account_id=account.id, service=service, used=used))
    db.flush()
    return subscription


def fund(db: Session, account: Account, amount_minor: int, key: str = "fund") -> None:
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=amount_minor,
        description="test funds",
        idempotency_key=key,
    )


def make_grant(
    db: Session,
    account: Account,
    *,
    amount_minor: int,
    expires_in: timedelta = timedelta(days=20),
    source: str = "Downgrade from Complete to Professional",
    key: str | None = None,
) -> ReserveGrant:
    return ledger.grant_reserve(
        db,
        account=account,
        amount_minor=amount_minor,
        source=source,
        expires_at=utcnow() + expires_in,
        idempotency_key=key or f"grant-{next(_serials)}",
    )


def make_card(
    db: Session,
    *,
    reseller_id: int,
    pin: str,
    amount_minor: int = 2000,
    currency: str = "GBP",
    expires_at: datetime | None = None,
) -> TopupCard:
    vault = PinVault(PIN_KEY)
    n = next(_serials)
    card = TopupCard(
        reseller_id=reseller_id,
        serial=f"T-{n:08d}",
        series="T",
        amount_minor=amount_minor,
        currency=currency,
        pin_hash=vault.hash(pin),
        pin_encrypted=vault.encrypt(pin),
        pin_length=len(pin),
        expires_at=expires_at if expires_at is not None else utcnow() + timedelta(days=30),
    )
    db.add(card)
    db.flush()
    return card


HTMX = {"HX-Request": "true"}


def reread(db: Session) -> None:
    """Forget what this session read, so the next queries see what requests committed."""
    db.rollback()
    db.expire_all()
