"""A postpaid customer's card payment pays their oldest open invoices (SPEC 5.5)."""

from datetime import date

from sqlalchemy import select

from portal.models import (
    BillingModel,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentPurpose,
    UnallocatedPayment,
)
from portal.payments import service
from tests.builders import make_account, make_reseller


def _invoice(db, account, number, month, total):
    invoice = Invoice(
        reseller_id=account.reseller_id,
        account_id=account.id,
        number=number,
        period_start=date(2026, month, 1),
        period_end=date(2026, month, 28),
        currency="GBP",
        subtotal_minor=total,
        total_minor=total,
        status=InvoiceStatus.OPEN,
    )
    db.add(invoice)
    return invoice


def _pending_payment(db, account, amount):
    payment = Payment(
        account_id=account.id,
        purpose=PaymentPurpose.TOPUP,
        amount_minor=amount,
        currency="GBP",
        idempotency_key=f"pay-{account.id}-{amount}",
    )
    db.add(payment)
    db.commit()
    return payment


def test_card_payment_pays_oldest_open_invoices_then_keeps_the_rest(db):
    account = make_account(
        db, reseller=make_reseller(db), model=BillingModel.POSTPAID, credit_limit_minor=10000
    )
    older, newer = _invoice(db, account, 1, 1, 3000), _invoice(db, account, 2, 2, 4000)
    payment = _pending_payment(db, account, 5000)
    service.settle_payment_succeeded(db, payment=payment)
    service.settle_payment_succeeded(db, payment=payment)  # the webhook after the answer
    db.rollback()
    assert (older.status, older.paid_minor) == (InvoiceStatus.PAID, 3000)
    assert (newer.status, newer.paid_minor) == (InvoiceStatus.OPEN, 2000)
    assert db.scalars(select(UnallocatedPayment)).all() == []
    assert account.balance_minor == 5000


def test_overpayment_becomes_an_unallocated_payment(db):
    account = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    invoice = _invoice(db, account, 1, 1, 1000)
    service.settle_payment_succeeded(db, payment=_pending_payment(db, account, 2500))
    db.rollback()
    assert invoice.status == InvoiceStatus.PAID
    assert [u.remaining_minor for u in db.scalars(select(UnallocatedPayment))] == [1500]


def test_prepaid_card_payment_touches_no_invoice(db):
    account = make_account(db, reseller=make_reseller(db))
    invoice = _invoice(db, account, 1, 1, 1000)
    service.settle_payment_succeeded(db, payment=_pending_payment(db, account, 2500))
    db.rollback()
    assert (invoice.status, invoice.paid_minor) == (InvoiceStatus.OPEN, 0)
    assert db.scalars(select(UnallocatedPayment)).all() == []
