"""Pay now: a postpaid customer pays an invoice with the saved cards, primary then secondary."""

from __future__ import annotations

from sqlalchemy.orm import Session

from portal import invoices
from portal.domain import ValidationFailed
from portal.models import (
    Account,
    BillingModel,
    CardRole,
    Invoice,
    Payment,
    PaymentPurpose,
    PaymentStatus,
)
from portal.money import format_money
from portal.payments import service
from portal.payments.gateway import PaymentDeclined

# Answers after which trying the next card would risk a second charge.
FINAL = (PaymentStatus.SUCCEEDED, PaymentStatus.PENDING)


def amount_due(invoice: Invoice) -> int:
    return max(invoice.total_minor - invoice.paid_minor, 0)


def can_pay(account: Account, invoice: Invoice) -> bool:
    """Whether the invoice offers Pay now: a postpaid invoice with something due."""
    return (
        account.billing_model == BillingModel.POSTPAID
        and invoice.status in invoices.UNPAID
        and amount_due(invoice) > 0
    )


def pay_invoice(
    db: Session, *, account: Account, invoice_id: int, amount_minor: int, idempotency_key: str
) -> Payment:
    """Charge the primary card, then the secondary if it is refused, for an invoice (or part).

    One idempotency key per card attempt, so a resubmitted form charges nothing more. The
    payment is allocated to this invoice first when it succeeds. Raises a domain error with
    a clear message unless a card paid (or the payment service has not answered yet).
    """
    invoice = invoices.get_invoice(db, account_id=account.id, invoice_id=invoice_id)
    if not can_pay(account, invoice):
        raise ValidationFailed(f"Nothing is due on this invoice ({invoice.status.value}).")
    due = amount_due(invoice)
    if not isinstance(amount_minor, int) or not 0 < amount_minor <= due:
        raise ValidationFailed(
            f"Enter an amount up to the amount due, {format_money(due, account.currency)}.",
            field="amount",
        )
    cards = [
        card
        for role in (CardRole.PRIMARY, CardRole.SECONDARY)
        if (card := service.card_with_role(db, account=account, role=role)) is not None
    ]
    if not cards:
        raise ValidationFailed("Add a payment card first: Pay now uses your saved cards.")
    refusals = []
    for card in cards:
        payment = service.charge_card(
            db,
            account=account,
            card=card,
            amount_minor=amount_minor,
            purpose=PaymentPurpose.INVOICE,
            idempotency_key=f"{idempotency_key}:{card.role.value}",
            invoice_id=invoice.id,
        )
        if payment.status in FINAL:
            service.raise_unless_succeeded(payment)
            return payment
        refusals.append(f"{card.brand.title()} •••• {card.last4}: {payment.failure_message}")
    raise PaymentDeclined("No card could pay this invoice. " + " ".join(refusals))


def paid_with(payment: Payment) -> str:
    """The confirmation: how much, and which card paid."""
    card = payment.card
    which = f" with {card.brand.title()} •••• {card.last4}" if card else ""
    return f"{format_money(payment.amount_minor, payment.currency)} paid{which}. Thank you."
