"""Pay now: a postpaid customer pays an invoice with the saved cards (primary, then secondary)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import db as portal_db
from portal import invoices
from portal.ledger import audit_balances
from portal.models import (
    Account,
    BillingModel,
    EntryKind,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    Payment,
    PaymentStatus,
    Plan,
    Role,
    Subscription,
    utcnow,
)
from portal.payments import gateway
from tests.builders import login, make_customer, make_reseller, make_user
from tests.payments.conftest import add_test_card

DECLINED = "4000000000000341"


def issue_invoice(app, account_id: int, *, overdue: bool = True) -> int:
    """An invoice of £45.00 issued two periods ago (overdue by now), through the domain."""
    with app.app_context():
        session = portal_db.new_session()
        issued = datetime(2026, 1, 1, 1, tzinfo=UTC)
        (invoice,) = invoices.generate_for_account(session, account_id=account_id, now=issued)
        if overdue:
            invoices.collect_overdue(session, now=datetime(2026, 2, 1, tzinfo=UTC))
        invoice_id = invoice.id
        session.close()
    return invoice_id


@pytest.fixture
def bob(app, db):
    user = make_customer(db, model=BillingModel.POSTPAID, credit_limit_minor=20000)
    plan = Plan(name="Complete", price_minor=4500, currency="GBP")
    db.add(plan)
    db.flush()
    db.add(
        Subscription(
            account_id=user.account_id, plan_id=plan.id, anchor_day=1, started_on=date(2026, 1, 1)
        )
    )
    db.commit()
    return user


def pay_form(client, invoice_id: int) -> dict:
    page = client.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key"[^>]*value="([0-9a-f]{32})"', page)
    assert key, "the invoice page offers Pay now"
    amount = re.search(r'name="amount"[^>]*value="([0-9.]+)"', page)
    return {"idempotency_key": key.group(1), "amount": amount.group(1)}


def pay(client, invoice_id: int, form: dict, **overrides):
    return client.post(f"/billing/invoices/{invoice_id}/pay", data={**form, **overrides})


def state(db, account_id: int, invoice_id: int):
    db.rollback()
    db.expire_all()
    invoice = db.get(Invoice, invoice_id)
    payments = db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.PAYMENT)
    )
    return invoice.status, invoice.paid_minor, db.get(Account, account_id).balance_minor, payments


def test_pay_now_pays_an_overdue_invoice_with_the_primary_card(app, client, db, bob):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id)
    login(client, bob.email)
    page = client.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert "Overdue" in page and "Pay now" in page and "£45.00" in page
    form = pay_form(client, invoice_id)
    assert form["amount"] == "45.00"  # the amount due, ready to pay
    answer = pay(client, invoice_id, form)
    assert answer.status_code == 303
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "£45.00 paid with Visa •••• 4242" in shown
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.PAID, 4500, 0, 1)
    # The same form again (a double click, a retry) charges nothing more.
    pay(client, invoice_id, form)
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.PAID, 4500, 0, 1)
    assert db.scalar(select(func.count()).select_from(Payment)) == 1
    assert "Pay now" not in client.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert audit_balances(db) == []


def test_a_refused_primary_card_falls_back_to_the_secondary(app, client, db, bob):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id, DECLINED)  # the first card becomes primary
    add_test_card(app, bob.account_id)  # the second, secondary
    login(client, bob.email)
    answer = pay(client, invoice_id, pay_form(client, invoice_id))
    assert answer.status_code == 303
    assert "paid with Visa •••• 4242" in client.get(answer.headers["Location"]).text
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.PAID, 4500, 0, 1)
    statuses = db.scalars(select(Payment.status).order_by(Payment.id)).all()
    assert statuses == [PaymentStatus.FAILED, PaymentStatus.SUCCEEDED]
    # The same rule as top-ups (service.charge_with_backup): one key per card attempt.
    payments = db.scalars(select(Payment).order_by(Payment.id)).all()
    assert [p.idempotency_key.rsplit(":", 1)[1] for p in payments] == [
        f"card{p.card_id}" for p in payments
    ]
    assert [p.paid_by_role for p in payments] == ["primary", "secondary"]
    assert len({p.idempotency_key.rsplit(":", 1)[0] for p in payments}) == 1


def test_when_every_card_is_refused_it_says_so_and_nothing_changes(app, client, db, bob):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id, DECLINED)
    login(client, bob.email)
    answer = pay(client, invoice_id, pay_form(client, invoice_id))
    assert answer.status_code == 422
    assert "No card could pay this invoice" in answer.text and "declined" in answer.text
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.OVERDUE, 0, -4500, 0)


def test_partial_payment_and_amounts_above_the_amount_due(app, client, db, bob):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id)
    login(client, bob.email)
    too_much = pay(client, invoice_id, pay_form(client, invoice_id), amount="45.01")
    assert too_much.status_code == 422
    assert "Enter an amount up to the amount due, £45.00." in too_much.text
    for bad in ("0", "-5", "abc", ""):
        refused = pay(client, invoice_id, pay_form(client, invoice_id), amount=bad)
        assert refused.status_code == 422
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.OVERDUE, 0, -4500, 0)
    pay(client, invoice_id, pay_form(client, invoice_id), amount="20.00")
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.OVERDUE, 2000, -2500, 1)
    assert pay_form(client, invoice_id)["amount"] == "25.00"
    pay(client, invoice_id, pay_form(client, invoice_id), amount="25")
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.PAID, 4500, 0, 2)


def test_pay_now_goes_to_the_chosen_invoice_first(app, client, db, bob):
    older = issue_invoice(app, bob.account_id)
    with app.app_context():
        session = portal_db.new_session()
        (newer,) = invoices.generate_for_account(
            session, account_id=bob.account_id, now=datetime(2026, 2, 1, 2, tzinfo=UTC)
        )
        newer_id = newer.id
        session.close()
    add_test_card(app, bob.account_id)
    login(client, bob.email)
    pay(client, newer_id, pay_form(client, newer_id))
    assert state(db, bob.account_id, newer_id)[:2] == (InvoiceStatus.PAID, 4500)
    assert state(db, bob.account_id, older)[:2] == (InvoiceStatus.OVERDUE, 0)


def test_other_accounts_prepaid_and_void_invoices_cannot_be_paid(app, client, db, bob):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id)
    stranger = make_customer(db, reseller=make_reseller(db))
    db.commit()
    login(client, stranger.email)
    assert client.get(f"/billing/invoices/{invoice_id}").status_code == 404
    form = {"idempotency_key": "a" * 32, "amount": "45.00"}
    assert pay(client, invoice_id, form).status_code == 404
    assert pay(client, 10**30, form).status_code == 404
    client = app.test_client()
    login(client, bob.email)
    with app.app_context():
        session = portal_db.new_session()
        invoice = session.get(Invoice, invoice_id)
        invoices.void_invoice(session, invoice=invoice, reason="Billed twice", actor_user_id=None)
        session.close()
    page = client.get(f"/billing/invoices/{invoice_id}").text
    assert "Void" in page and "Pay now" not in page
    refused = pay(client, invoice_id, form)
    assert refused.status_code == 422 and "Nothing is due on this invoice (void)" in refused.text
    assert db.scalar(select(func.count()).select_from(Payment)) == 0


def test_an_unanswered_payment_keeps_its_key_so_pressing_again_never_charges_twice(
    app, client, db, bob, monkeypatch
):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id)
    login(client, bob.email)
    form = pay_form(client, invoice_id)
    real = gateway.charge_off_session

    def answer_lost(**kwargs):  # Stripe took the charge but its answer never arrived
        real(**kwargs)
        raise gateway.GatewayUnavailable(gateway.UNAVAILABLE)

    monkeypatch.setattr(gateway, "charge_off_session", answer_lost)
    first = pay(client, invoice_id, form)
    assert first.status_code == 422 and "did not confirm the payment yet" in first.text
    monkeypatch.setattr(gateway, "charge_off_session", real)
    shown_key = re.search(r'name="idempotency_key"[^>]*value="([0-9a-f]{32})"', first.text)
    assert shown_key.group(1) == form["idempotency_key"]  # the same payment, not a new one
    pay(client, invoice_id, form)  # the customer presses Pay now again
    # A fresh form cannot start a second payment while the first is unanswered either.
    other = pay(client, invoice_id, {**form, "idempotency_key": "b" * 32})
    assert "still being confirmed" in other.text
    db.rollback()
    assert db.scalars(select(Payment.status)).all() == [PaymentStatus.PENDING]


def test_a_double_submit_after_full_payment_shows_the_payment(app, client, db, bob):
    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id)
    login(client, bob.email)
    form = pay_form(client, invoice_id)
    assert pay(client, invoice_id, form).status_code == 303
    again = pay(client, invoice_id, form)  # the answer the browser shows
    assert again.status_code == 303
    assert "paid with Visa •••• 4242" in client.get(again.headers["Location"]).text
    assert db.scalar(select(func.count()).select_from(Payment)) == 1


def test_a_refund_of_an_invoice_payment_is_billed_on_the_next_invoice(app, client, db, bob):
    from portal.payments import refunds

    invoice_id = issue_invoice(app, bob.account_id, overdue=False)
    add_test_card(app, bob.account_id)
    login(client, bob.email)
    pay(client, invoice_id, pay_form(client, invoice_id))
    db.rollback()
    payment = db.scalar(select(Payment))
    with app.app_context():  # an admin refunds it in full (through localstripe)
        session = portal_db.new_session()
        admin = make_user(session, role=Role.RESELLER_ADMIN, reseller=bob.account.reseller)
        refunds.refund_payment(
            session,
            payment=session.get(Payment, payment.id),
            amount_minor=None,
            reason="Paid twice",
            actor=admin,
            idempotency_key="refund-bob-1",
        )
        session.close()
    with app.app_context():
        session = portal_db.new_session()
        # The invoices up to the period after the refund (issued today, in real time).
        later = invoices.generate_for_account(
            session, account_id=bob.account_id, now=utcnow() + timedelta(days=40)
        )
        billed = [(line.kind, line.amount_minor) for inv in later for line in inv.lines]
        session.close()
    lines = [line for line in billed if line[0] != "plan_fee"]
    fees = sum(amount for kind, amount in billed if kind == "plan_fee")
    assert lines == [("refund", 4500)]  # the £45 refunded is owed again, once
    db.rollback()
    assert db.get(Account, bob.account_id).balance_minor == -4500 - fees


NEEDS_3DS = "4000002500003155"


@pytest.mark.stripe
def test_a_card_asking_for_3d_secure_is_confirmed_in_the_browser_then_pays_the_invoice(
    app, client, db, bob, localstripe_url
):
    from tests.payments.test_three_d_secure import bank_answers

    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id, NEEDS_3DS)  # primary: its bank wants the customer
    add_test_card(app, bob.account_id)  # secondary: not tried while the customer can confirm
    login(client, bob.email)
    form = pay_form(client, invoice_id)
    answer = pay(client, invoice_id, form)
    assert answer.status_code == 303
    payment = db.scalars(select(Payment)).one()
    assert payment.status == PaymentStatus.REQUIRES_ACTION and payment.invoice_id == invoice_id
    assert answer.headers["Location"].endswith(f"/billing/payments/{payment.id}/authenticate")
    page = client.get(answer.headers["Location"]).text
    assert "Confirm payment with your bank" in page and "Back to the invoice" in page
    # Pressing Pay now again (same form) leads to the same confirmation, no second payment.
    assert pay(client, invoice_id, form).headers["Location"] == answer.headers["Location"]
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.OVERDUE, 0, -4500, 0)
    bank_answers(app, localstripe_url, payment.id, success=True)
    done = client.post(f"/billing/payments/{payment.id}/authenticate")
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"/billing/invoices/{invoice_id}")
    assert "£45.00 paid with Visa •••• 3155" in client.get(done.headers["Location"]).text
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.PAID, 4500, 0, 1)
    assert db.scalar(select(func.count()).select_from(Payment)) == 1
    assert audit_balances(db) == []


@pytest.mark.stripe
def test_a_failed_3d_secure_confirmation_leaves_the_invoice_due(
    app, client, db, bob, localstripe_url
):
    from tests.payments.test_three_d_secure import bank_answers

    invoice_id = issue_invoice(app, bob.account_id)
    add_test_card(app, bob.account_id, NEEDS_3DS)
    login(client, bob.email)
    pay(client, invoice_id, pay_form(client, invoice_id))
    payment = db.scalars(select(Payment)).one()
    bank_answers(app, localstripe_url, payment.id, success=False)
    done = client.post(f"/billing/payments/{payment.id}/authenticate")
    assert done.headers["Location"].endswith(f"/billing/invoices/{invoice_id}")
    page = client.get(done.headers["Location"]).text
    assert "No money was taken" in page and "Pay now" in page
    assert state(db, bob.account_id, invoice_id) == (InvoiceStatus.OVERDUE, 0, -4500, 0)
