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
    Invoice,
    Payment,
    PaymentPurpose,
    PaymentStatus,
)
from portal.payments import service
from portal.payments.gateway import GatewayUnavailable, PaymentDeclined

# Answers this form keeps giving: paid, or not yet answered by the payment service.
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

    The same rule as top-ups (`service.charge_with_backup`): one idempotency key per card
    attempt, so a resubmitted form charges nothing more; a card whose bank asks for 3-D
    Secure raises AuthenticationRequired carrying the payment for the browser to confirm.
    The payment is allocated to this invoice first when it succeeds. Raises a domain error
    with a clear message unless a card paid.
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
    outcome = service.charge_with_backup(
        db,
        account=account,
        amount_minor=amount_minor,
        purpose=PaymentPurpose.INVOICE,
        idempotency_key=idempotency_key,
        on_session=True,  # a card whose bank asks for 3-D Secure is confirmed in the browser
        invoice_id=invoice.id,
    )
    if outcome.payment.status == PaymentStatus.FAILED:
        raise PaymentDeclined(
            (_("No card could pay this invoice.") + " " + " ".join(outcome.failures()))[:300]
        )
    # Paid; or still unconfirmed (GatewayUnavailable); or the bank wants the customer
    # (AuthenticationRequired carries the payment for the browser to finish).
    service.raise_unless_succeeded(outcome.payment)
    return outcome.payment


def _replayed(db: Session, account: Account, invoice: Invoice, key: str) -> Payment | None:
    """The answer already given to this form: a success, or a payment still in flight."""
    # charge_with_backup keys each card's attempt `<key>:card<id>`.
    attempts = db.scalars(
        select(Payment).where(
            Payment.account_id == account.id,
            Payment.idempotency_key.startswith(f"{key}:card", autoescape=True),
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
