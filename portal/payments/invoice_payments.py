"""Pay now: a postpaid customer pays an invoice with the saved cards, primary then secondary."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import invoices
from portal.domain import ValidationFailed
from portal.i18n import _, format_amount
from portal.models import (
    Account,
    BillingModel,
    CardRole,
    Invoice,
    Payment,
    PaymentPurpose,
    PaymentStatus,
)
from portal.payments import service
from portal.payments.gateway import GatewayUnavailable, PaymentDeclined

# Answers after which trying the next card would risk a second charge.
FINAL = (PaymentStatus.SUCCEEDED, PaymentStatus.PENDING)
CARD_ORDER = (CardRole.PRIMARY, CardRole.SECONDARY)


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
    earlier = _replayed(db, account, invoice, idempotency_key)
    if earlier is not None:  # the same form again: its answer, never a second charge
        service.raise_unless_succeeded(earlier)
        return earlier
    if _in_flight(db, invoice):
        raise GatewayUnavailable(
            "A payment for this invoice is still being confirmed by the payment service."
            " The invoice updates as soon as it is; nothing more was charged."
        )
    if not can_pay(account, invoice):
        raise ValidationFailed(
            _("Nothing is due on this invoice (%(status)s).", status=_(invoice.status.value))
        )
    due = amount_due(invoice)
    if not isinstance(amount_minor, int) or not 0 < amount_minor <= due:
        raise ValidationFailed(
            _(
                "Enter an amount up to the amount due, %(amount)s.",
                amount=format_amount(due, account.currency),
            ),
            field="amount",
        )
    cards = [
        card
        for role in CARD_ORDER
        if (card := service.card_with_role(db, account=account, role=role)) is not None
    ]
    if not cards:
        raise ValidationFailed(_("Add a payment card first: Pay now uses your saved cards."))
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


def _replayed(db: Session, account: Account, invoice: Invoice, key: str) -> Payment | None:
    """The answer already given to this form: a success, or a payment still in flight."""
    attempts = db.scalars(
        select(Payment).where(
            Payment.account_id == account.id,
            Payment.idempotency_key.in_([f"{key}:{role.value}" for role in CARD_ORDER]),
        )
    ).all()
    for payment in attempts:
        if payment.invoice_id != invoice.id:
            raise ValidationFailed(
                _("This payment form belongs to another invoice. Reload the page.")
            )
        if payment.status in FINAL:
            return payment
    return None


def _in_flight(db: Session, invoice: Invoice) -> bool:
    """A Pay now payment for this invoice that the payment service has not answered yet."""
    pending = select(Payment.id).where(
        Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING
    )
    return db.scalar(pending.limit(1)) is not None


def paid_with(payment: Payment) -> str:
    """The confirmation: how much, and which card paid."""
    card = payment.card
    amount = format_amount(payment.amount_minor, payment.currency)
    if card:
        return _(
            "%(amount)s paid with %(brand)s •••• %(last4)s. Thank you.",
            amount=amount,
            brand=card.brand.title(),
            last4=card.last4,
        )
    return _("%(amount)s paid. Thank you.", amount=amount)
