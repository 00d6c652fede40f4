"""Threshold auto-recharge: charge the primary card (then the secondary) when funds run low.

Safety rules:
- one attempt in flight per account: the attempt row is created under the account lock
  and a later run resumes it instead of starting another;
- every card charge of an attempt has its own idempotency key (attempt key + card), so a
  retry after a crash or a Stripe outage finds the same Payment and never charges twice;
- the secondary card is tried only after the primary definitively failed; a payment whose
  outcome is unknown (Stripe unreachable) keeps the attempt in flight until it settles;
- after every card failed, back off (1 h, 6 h, 24 h) and tell the customer.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import emails, ledger
from portal.models import (
    Account,
    AttemptStatus,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    BillingModel,
    CardRole,
    Payment,
    PaymentCard,
    PaymentPurpose,
    PaymentStatus,
    utcnow,
)
from portal.money import format_money
from portal.notifications import notify

log = logging.getLogger(__name__)

BACKOFF = [timedelta(hours=1), timedelta(hours=6), timedelta(hours=24)]
SWEEP_BATCH = 500


def funds_for_trigger(account: Account, now: datetime | None = None) -> int:
    """SPEC 11: prepaid compares the balance, postpaid the available funds."""
    if account.billing_model == BillingModel.POSTPAID:
        return ledger.available_funds(account, now)
    return account.balance_minor


def is_due(account: Account, setting: AutoRechargeSetting | None, now: datetime) -> bool:
    """Enabled, not backing off, and funds at or below the threshold."""
    if setting is None or not setting.enabled or setting.amount_minor <= 0:
        return False
    if setting.next_attempt_at is not None and setting.next_attempt_at > now:
        return False
    return funds_for_trigger(account, now) <= setting.threshold_minor


def recharge_if_needed(
    db: Session, *, account_id: int, now: datetime | None = None
) -> AutoRechargeAttempt | None:
    """Start (or resume) the account's automatic top-up when it is due; commits."""
    now = now or utcnow()
    attempt = _claim(db, account_id, now)
    if attempt is None:
        return None
    return _run_attempt(db, attempt, now)


def _in_flight(db: Session, account_id: int) -> AutoRechargeAttempt | None:
    return db.scalar(
        select(AutoRechargeAttempt)
        .where(
            AutoRechargeAttempt.account_id == account_id,
            AutoRechargeAttempt.status == AttemptStatus.IN_FLIGHT,
        )
        .order_by(AutoRechargeAttempt.id)
        .limit(1)
    )


def _claim(db: Session, account_id: int, now: datetime) -> AutoRechargeAttempt | None:
    # Cheap unlocked look first: most calls (every debit) find nothing to do.
    account = db.get(Account, account_id)
    setting = db.get(AutoRechargeSetting, account_id)
    if account is None or (not is_due(account, setting, now) and not _in_flight(db, account_id)):
        db.rollback()
        return None
    account = ledger.lock_account(db, account_id)  # one claimer per account at a time
    attempt = _in_flight(db, account_id)
    if attempt is None:
        setting = db.get(AutoRechargeSetting, account_id, populate_existing=True)
        if not is_due(account, setting, now) or _primary(db, account_id) is None:
            db.rollback()
            return None
        attempt = AutoRechargeAttempt(
            account_id=account_id,
            amount_minor=setting.amount_minor,
            status=AttemptStatus.IN_FLIGHT,
            idempotency_key=f"autorecharge:{account_id}:{uuid.uuid4().hex}",
            created_at=now,
        )
        db.add(attempt)
    db.commit()
    return attempt


def _primary(db: Session, account_id: int) -> PaymentCard | None:
    return _card(db, account_id, CardRole.PRIMARY)


def _card(db: Session, account_id: int, role: CardRole) -> PaymentCard | None:
    return db.scalar(
        select(PaymentCard).where(PaymentCard.account_id == account_id, PaymentCard.role == role)
    )


def _run_attempt(db: Session, attempt: AutoRechargeAttempt, now: datetime) -> AutoRechargeAttempt:
    from portal.domain import ValidationFailed
    from portal.payments.service import charge_with_backup

    account = db.get(Account, attempt.account_id)
    try:
        outcome = charge_with_backup(
            db,
            account=account,
            amount_minor=attempt.amount_minor,
            purpose=PaymentPurpose.AUTO_RECHARGE,
            idempotency_key=attempt.idempotency_key,
            on_session=False,
        )
    except ValidationFailed:  # the cards were removed since the attempt was claimed
        db.rollback()
        return _failed(db, attempt, [], now)
    if not outcome.succeeded:
        # Only when no card paid: confirming a payment after the backup card paid would
        # top up twice.
        for payment in outcome.tried:
            if payment.status == PaymentStatus.REQUIRES_ACTION:
                _ask_to_authenticate(db, account, payment)
    payment = outcome.payment
    failures = [
        f"{_card_name(p.card)}: {p.failure_message or 'failed'}" for p in outcome.tried[:-1]
    ]
    if outcome.succeeded:
        return _succeeded(db, attempt, payment.card, payment, failures)
    if payment.status == PaymentStatus.PENDING:
        return _waiting(db, attempt, payment.card, payment)
    failures.append(f"{_card_name(payment.card)}: {payment.failure_message or 'failed'}")
    return _failed(db, attempt, failures, now)


def _ask_to_authenticate(db: Session, account: Account, payment: Payment) -> None:
    """Off-session, the bank wants the customer: email and notice with a link to finish."""
    from flask import url_for

    amount = format_money(payment.amount_minor, payment.currency)
    try:
        link = url_for("billing.authenticate_payment", payment_id=payment.id, _external=True)
    except RuntimeError:  # no request and no SERVER_NAME (a job): the path alone
        link = f"/billing/payments/{payment.id}/authenticate"
    notify(
        db,
        account=account,
        subject=f"Please confirm the automatic top-up of {amount} with your bank",
        body=(
            f"Hello {account.name},\n\nYour bank asks you to confirm the automatic top-up of "
            f"{amount} for account {account.number} (3-D Secure). Finish it here:\n{link}\n"
        ),
        dedupe_key=f"authenticate:{payment.id}",
        level="warning",
    )
    db.commit()


def _card_name(card: PaymentCard | None) -> str:
    if card is None:
        return "a removed card"
    return f"{card.role.value} card {card.brand.title()} •••• {card.last4}"


def _lock_attempt(db: Session, attempt_id: int) -> AutoRechargeAttempt:
    return db.execute(
        select(AutoRechargeAttempt)
        .where(AutoRechargeAttempt.id == attempt_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _succeeded(db, attempt, card, payment, failures) -> AutoRechargeAttempt:
    ledger.lock_account(db, attempt.account_id)
    attempt = _lock_attempt(db, attempt.id)
    if attempt.status == AttemptStatus.IN_FLIGHT:
        attempt.status, attempt.card_id, attempt.payment_id = (
            AttemptStatus.SUCCEEDED,
            card.id,
            payment.id,
        )
        charged = f"Charged {_card_name(card)}."
        attempt.message = ("; ".join(failures) + ". " if failures else "") + charged
        attempt.message = attempt.message[:300]
        setting = db.get(AutoRechargeSetting, attempt.account_id, populate_existing=True)
        setting.failure_count, setting.next_attempt_at = 0, None
    db.commit()
    return attempt


def _waiting(db, attempt, card, payment) -> AutoRechargeAttempt:
    # Outcome unknown (Stripe unreachable or processing): never move on to another card.
    attempt = _lock_attempt(db, attempt.id)
    if attempt.status == AttemptStatus.IN_FLIGHT:
        attempt.card_id, attempt.payment_id = card.id, payment.id
        attempt.message = "Waiting for the payment service to confirm the payment."
    db.commit()
    return attempt


def _failed(db, attempt, failures, now) -> AutoRechargeAttempt:
    account = ledger.lock_account(db, attempt.account_id)
    attempt = _lock_attempt(db, attempt.id)
    if attempt.status != AttemptStatus.IN_FLIGHT:
        db.commit()
        return attempt
    setting = db.get(AutoRechargeSetting, attempt.account_id, populate_existing=True)
    setting.failure_count += 1
    setting.next_attempt_at = now + BACKOFF[min(setting.failure_count, len(BACKOFF)) - 1]
    attempt.status = AttemptStatus.FAILED
    attempt.message = ("; ".join(failures) or "No payment card to charge.")[:300]
    _tell_customer(db, account, attempt, setting)
    db.commit()
    log.info("auto-recharge failed for account %s: %s", account.id, attempt.message)
    return attempt


def _tell_customer(db, account, attempt, setting) -> None:
    emails.autorecharge_failed_email(
        db,
        account=account,
        amount_minor=attempt.amount_minor,
        reason=attempt.message,
        next_attempt_at=setting.next_attempt_at,
        dedupe_key=f"autorecharge-failed:{attempt.id}",
    )


# --- The sweep: cost grows with the accounts below threshold, not with all accounts ---------


def due_account_ids(db: Session, now: datetime) -> list[int]:
    """Accounts to look at: attempts in flight, and enabled accounts at or below threshold.

    The balance filter uses the highest enabled threshold (an indexed MAX) so the accounts
    scan is an index range on accounts.balance_minor, then the per-account threshold.
    """
    resume = db.scalars(
        select(AutoRechargeAttempt.account_id).where(
            AutoRechargeAttempt.status == AttemptStatus.IN_FLIGHT
        )
    ).all()
    highest = db.scalar(
        select(func.max(AutoRechargeSetting.threshold_minor)).where(
            AutoRechargeSetting.enabled.is_(True)
        )
    )
    if highest is None:
        return sorted(set(resume))
    below = db.scalars(
        select(Account.id)
        .join(AutoRechargeSetting, AutoRechargeSetting.account_id == Account.id)
        .where(
            Account.balance_minor <= highest,
            AutoRechargeSetting.enabled.is_(True),
            (Account.balance_minor <= AutoRechargeSetting.threshold_minor)
            | (Account.billing_model == BillingModel.POSTPAID),
            AutoRechargeSetting.next_attempt_at.is_(None)
            | (AutoRechargeSetting.next_attempt_at <= now),
        )
    ).all()
    return sorted(set(resume) | set(below))


def sweep(db: Session, *, now: datetime | None = None) -> int:
    """Recharge every due account (the periodic safety net); returns attempts that ran."""
    now = now or utcnow()
    ran = 0
    for account_id in due_account_ids(db, now):
        db.rollback()
        try:
            ran += recharge_if_needed(db, account_id=account_id, now=now) is not None
        except Exception:  # one account's trouble must not stop the others
            db.rollback()
            log.exception("auto-recharge of account %s failed", account_id)
    return ran


def attempts_for(db: Session, *, account_id: int, limit: int = 20) -> list[AutoRechargeAttempt]:
    """Latest attempts of an account, newest first (admin and settings page)."""
    return list(
        db.scalars(
            select(AutoRechargeAttempt)
            .where(AutoRechargeAttempt.account_id == account_id)
            .order_by(AutoRechargeAttempt.id.desc())
            .limit(limit)
        )
    )


def payment_of(db: Session, attempt: AutoRechargeAttempt) -> Payment | None:
    return db.get(Payment, attempt.payment_id) if attempt.payment_id else None
