"""After a payment: refunds debit the balance, disputes flag the payment for the admins."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import audit, ledger
from portal.models import Account, EntryKind, Payment, PaymentStatus
from portal.money import format_money

log = logging.getLogger(__name__)


def _payment_of_charge(
    db: Session, charge_id: str | None, payment_intent_id: str | None
) -> Payment | None:
    if charge_id:
        payment = db.scalar(select(Payment).where(Payment.stripe_charge_id == charge_id))
        if payment is not None:
            return payment
    if payment_intent_id:
        return db.scalar(
            select(Payment).where(Payment.stripe_payment_intent_id == payment_intent_id)
        )
    return None


def record_refund(
    db: Session, *, charge_id: str, payment_intent_id: str | None, amount_refunded_minor: int
) -> Payment | None:
    """Debit what Stripe refunded since we last heard (once per refunded total; commits)."""
    payment = _payment_of_charge(db, charge_id, payment_intent_id)
    if payment is None:
        return None
    account = ledger.lock_account(db, payment.account_id)
    payment = db.execute(
        select(Payment)
        .where(Payment.id == payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    total = min(max(int(amount_refunded_minor), 0), payment.amount_minor)
    credited = payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)
    if credited and total > payment.refunded_minor:
        ledger.post_entry(
            db,
            account_id=account.id,
            account=account,
            kind=EntryKind.REFUND,
            amount_minor=-(total - payment.refunded_minor),
            currency=payment.currency,
            description=f"Card payment refunded ({format_money(total, payment.currency)} in total)",
            reference=charge_id,
            # The cumulative total makes each partial refund its own, single, entry.
            idempotency_key=f"refund:{payment.id}:{total}",
        )
        payment.refunded_minor = total
        if total == payment.amount_minor:
            payment.status = PaymentStatus.REFUNDED
    db.commit()
    return payment


def record_dispute(
    db: Session, *, charge_id: str, payment_intent_id: str | None, dispute_id: str, reason: str
) -> Payment | None:
    """Flag a disputed payment and tell the admins through the audit log (commits)."""
    payment = _payment_of_charge(db, charge_id, payment_intent_id)
    if payment is None:
        return None
    if not payment.disputed:
        payment.disputed = True
        account = db.get(Account, payment.account_id)
        audit.record(
            db,
            actor_user_id=None,
            reseller_id=account.reseller_id,
            action="payment.dispute_created",
            object_type="payment",
            object_id=payment.id,
            before={"disputed": False},
            after={
                "disputed": True,
                "dispute": dispute_id,
                "reason": reason,
                "account": account.number,
                "amount": format_money(payment.amount_minor, payment.currency),
            },
        )
        log.warning("Payment %s of account %s is disputed (%s)", payment.id, account.number, reason)
    db.commit()
    return payment
