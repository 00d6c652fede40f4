"""Receipts: every successful card payment gets one numbered receipt, with its email."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import (
    Account,
    Payment,
    PaymentPurpose,
    PaymentStatus,
    Receipt,
    ReceiptCounter,
    utcnow,
)
from portal.numbering import take_number

WHAT = {
    PaymentPurpose.TOPUP: "Top-up by card",
    PaymentPurpose.AUTO_RECHARGE: "Automatic top-up by card",
    PaymentPurpose.INVOICE: "Invoice payment by card",
    PaymentPurpose.MANUAL: "Payment by card",
}


def issue_receipt(db: Session, *, account: Account, payment: Payment) -> Receipt:
    """The payment's receipt, numbered and emailed once; the caller holds the account lock.

    Idempotent per payment: a replayed success (webhook after the answer) returns the
    receipt already issued. Runs in the caller's transaction, so the credit and its
    receipt are committed together or not at all.
    """
    if payment.status != PaymentStatus.SUCCEEDED or payment.account_id != account.id:
        raise ValueError("only a succeeded payment of this account gets a receipt")
    existing = db.scalar(select(Receipt).where(Receipt.payment_id == payment.id))
    if existing is not None:
        return existing
    receipt = Receipt(
        reseller_id=account.reseller_id,
        account_id=account.id,
        payment_id=payment.id,
        number=take_number(db, ReceiptCounter, account.reseller_id),
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        description=WHAT[payment.purpose],
        method=_method(payment),
        issued_at=utcnow(),
    )
    db.add(receipt)
    db.flush()
    from portal import emails

    emails.receipt_email(db, account=account, receipt=receipt)
    return receipt


def _method(payment: Payment) -> str:
    card = payment.card
    return f"{card.brand.title()} •••• {card.last4}"[:80] if card else "Card"
