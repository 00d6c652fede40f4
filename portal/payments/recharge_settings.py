"""Automatic top-up settings as the customer sets them (the recharge itself runs elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import ValidationFailed
from portal.i18n import _, format_amount
from portal.models import (
    Account,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    CardRole,
    PaymentCard,
    utcnow,
)
from portal.money import minor_digits

# SPEC 11: the recharge amount lies between a minimum and a maximum in major units.
MIN_AMOUNT_MAJOR = 5
MAX_AMOUNT_MAJOR = 1000
MAX_THRESHOLD_MAJOR = 100_000
DEFAULT_THRESHOLD_MAJOR = 5
DEFAULT_AMOUNT_MAJOR = 20


@dataclass(frozen=True)
class Limits:
    min_amount_minor: int
    max_amount_minor: int
    max_threshold_minor: int


def limits_for(currency: str) -> Limits:
    """The allowed recharge amounts and threshold in the currency's minor units."""
    unit = 10 ** minor_digits(currency)
    return Limits(MIN_AMOUNT_MAJOR * unit, MAX_AMOUNT_MAJOR * unit, MAX_THRESHOLD_MAJOR * unit)


def current_settings(db: Session, *, account: Account) -> AutoRechargeSetting:
    """The stored settings, or unsaved defaults for an account that never set them."""
    setting = db.get(AutoRechargeSetting, account.id)
    if setting is not None:
        return setting
    unit = 10 ** minor_digits(account.currency)
    return AutoRechargeSetting(
        account_id=account.id,
        enabled=False,
        threshold_minor=DEFAULT_THRESHOLD_MAJOR * unit,
        amount_minor=DEFAULT_AMOUNT_MAJOR * unit,
    )


def save_auto_recharge_settings(
    db: Session, *, account: Account, enabled: bool, threshold_minor: int, amount_minor: int
) -> AutoRechargeSetting:
    """Validate and store the automatic top-up settings (commits)."""
    _check(db, account, enabled, threshold_minor, amount_minor)
    setting = db.get(AutoRechargeSetting, account.id, with_for_update=True)
    if setting is None:
        setting = AutoRechargeSetting(account_id=account.id, failure_count=0)
        db.add(setting)
    if enabled and not setting.enabled:
        # Switching it on again is a fresh start: forget earlier failures and back-off.
        setting.failure_count, setting.next_attempt_at = 0, None
    setting.enabled = enabled
    setting.threshold_minor = threshold_minor
    setting.amount_minor = amount_minor
    setting.updated_at = utcnow()
    db.commit()
    return setting


def _check(db: Session, account: Account, enabled: bool, threshold: int, amount: int) -> None:
    limits, money = limits_for(account.currency), account.currency
    if amount < limits.min_amount_minor or amount > limits.max_amount_minor:
        raise ValidationFailed(
            _(
                "Enter an amount from %(min)s to %(max)s.",
                min=format_amount(limits.min_amount_minor, money),
                max=format_amount(limits.max_amount_minor, money),
            ),
            field="amount",
        )
    if threshold < 0 or threshold > limits.max_threshold_minor:
        raise ValidationFailed(
            _(
                "Enter a threshold from %(min)s to %(max)s.",
                min=format_amount(0, money),
                max=format_amount(limits.max_threshold_minor, money),
            ),
            field="threshold",
        )
    if enabled and not _has_primary_card(db, account):
        raise ValidationFailed(
            _("Add a payment card and make it primary before turning on automatic top-up."),
            field="enabled",
        )


def _has_primary_card(db: Session, account: Account) -> bool:
    return (
        db.scalar(
            select(PaymentCard.id).where(
                PaymentCard.account_id == account.id, PaymentCard.role == CardRole.PRIMARY
            )
        )
        is not None
    )


def recent_attempts(db: Session, *, account: Account, limit: int = 10) -> list[AutoRechargeAttempt]:
    """The latest automatic top-up attempts, newest first."""
    return list(
        db.scalars(
            select(AutoRechargeAttempt)
            .where(AutoRechargeAttempt.account_id == account.id)
            .order_by(AutoRechargeAttempt.created_at.desc(), AutoRechargeAttempt.id.desc())
            .limit(limit)
        )
    )
