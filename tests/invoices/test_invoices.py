"""Billing cycle: periods, generation once per period, numbering, settlement, pages."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from portal import db as portal_db
from portal import invoices, jobs
from portal.ledger import post_entry
from portal.models import (
    Account,
    BillingModel,
    EntryKind,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    OutboxEmail,
    PaymentAllocation,
    Plan,
    Role,
    Subscription,
    UnallocatedPayment,
)
from tests.builders import login, make_account, make_reseller, make_user

FEB_15 = datetime(2030, 2, 15, 1, 0, tzinfo=UTC)  # the first period (15 Feb - 14 Mar) starts
MARCH_16 = datetime(2030, 3, 16, 2, 0, tzinfo=UTC)  # the second period (15 Mar - 14 Apr) started
APRIL_16 = datetime(2030, 4, 16, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("anchor", "day", "expected"),
    [
        (15, date(2030, 3, 16), (date(2030, 3, 15), date(2030, 4, 15))),
        (15, date(2030, 3, 14), (date(2030, 2, 15), date(2030, 3, 15))),
        (31, date(2030, 2, 28), (date(2030, 2, 28), date(2030, 3, 31))),
        (31, date(2030, 2, 27), (date(2030, 1, 31), date(2030, 2, 28))),
        (29, date(2032, 2, 29), (date(2032, 2, 29), date(2032, 3, 29))),
        (1, date(2030, 12, 31), (date(2030, 12, 1), date(2031, 1, 1))),
    ],
)
def test_billing_period_anchor_is_clamped(anchor, day, expected):
    period = invoices.period_containing(anchor, day)
    assert (period.start, period.end) == expected


def test_tax_is_the_included_share():
    assert invoices.included_tax(12000, 2000) == 2000
    assert invoices.included_tax(0, 2000) == 0
    assert invoices.included_tax(1, 2000) == 0  # 0.1666 rounds half-even to 0


def subscribed(db, reseller, *, model=BillingModel.POSTPAID, price=4500, **fields):
    plan = db.scalar(select(Plan).where(Plan.price_minor == price))
    if plan is None:
        plan = Plan(name=f"Plan {price}", price_minor=price, currency="GBP")
        db.add(plan)
        db.flush()
    account = make_account(
        db,
        reseller=reseller,
        model=model,
        credit_limit_minor=50000,
        email="bill@example.test",
        **fields,
    )
    db.add(
        Subscription(
            account_id=account.id, plan_id=plan.id, anchor_day=15, started_on=date(2030, 2, 15)
        )
    )
    db.flush()
    return account


def usage(db, account, amount_minor, when, key):
    posting = post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE,
        amount_minor=-amount_minor,
        description="Calls",
        idempotency_key=key,
    )
    posting.entry.created_at = when


def fresh(db):
    db.rollback()
    db.expire_all()


def run_cycle(app, now):
    return jobs.run_job("billing_cycle", app=app, now=now)


def test_postpaid_invoice_generated_once_with_lines_and_email(app, db):
    account = subscribed(db, make_reseller(db))
    usage(db, account, 300, datetime(2030, 2, 20, tzinfo=UTC), "u1")
    usage(db, account, 200, datetime(2030, 3, 14, 23, tzinfo=UTC), "u2")
    usage(db, account, 999, datetime(2030, 3, 15, 0, 1, tzinfo=UTC), "u3")  # next period
    db.commit()
    assert run_cycle(app, FEB_15) == 1  # the first period's fee, in advance; no usage yet
    assert run_cycle(app, MARCH_16) == 1
    assert run_cycle(app, MARCH_16) == 0
    fresh(db)
    first, invoice = db.scalars(select(Invoice).order_by(Invoice.number)).all()
    assert [(line.kind, line.amount_minor) for line in first.lines] == [("plan_fee", 4500)]
    # The invoice issued on 16 Mar bills the period that starts (15 Mar - 14 Apr) in advance
    # and the usage of the period that ended in arrears; the 15 Mar call waits for the next.
    assert (invoice.period_start, invoice.period_end) == (date(2030, 3, 15), date(2030, 4, 14))
    assert invoice.number == 2 and invoice.status == InvoiceStatus.OPEN
    assert [(line.kind, line.amount_minor, line.quantity) for line in invoice.lines] == [
        ("plan_fee", 4500, 1),
        ("usage", 500, 2),
    ]
    assert invoice.total_minor == 5000
    assert (invoice.tax_rate_bp, invoice.tax_minor, invoice.subtotal_minor) == (2000, 833, 4167)
    assert invoice.due_on == date(2030, 3, 30)  # 14 net days after it was issued
    # One fee per period; the balance owes usage + two fees.
    assert db.get(Account, account.id).balance_minor == -(300 + 200 + 999 + 2 * 4500)
    fees = db.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.PLAN_FEE)
    )
    assert fees == 2
    mail = db.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key == f"invoice:{invoice.id}"))
    assert "INV-" in mail.subject and "Amount due: £50.00, due on 30 Mar 2030" in mail.body
    assert "INV-" in mail.subject and f"/billing/invoices/{invoice.id}" in mail.body
    assert invoice.sent_at is not None


def test_numbers_are_gap_free_per_reseller(app, db):
    acme, beta = make_reseller(db), make_reseller(db)
    a1, a2, b1 = subscribed(db, acme), subscribed(db, acme), subscribed(db, beta)
    db.commit()
    run_cycle(app, FEB_15)
    run_cycle(app, MARCH_16)
    fresh(db)
    numbers = {
        (inv.account_id, inv.period_start.month): inv.number for inv in db.scalars(select(Invoice))
    }
    assert sorted(numbers[(a, m)] for a in (a1.id, a2.id) for m in (2, 3)) == [1, 2, 3, 4]
    assert sorted(numbers[(b1.id, m)] for m in (2, 3)) == [1, 2]


def test_prepaid_invoice_records_what_the_balance_paid(app, db):
    account = subscribed(db, make_reseller(db), model=BillingModel.PREPAID)
    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=10000,
        description="Top-up",
        idempotency_key="t",
    ).entry.created_at = datetime(2030, 2, 16, tzinfo=UTC)
    usage(db, account, 700, datetime(2030, 2, 20, tzinfo=UTC), "u1")
    db.commit()
    run_cycle(app, FEB_15)
    run_cycle(app, MARCH_16)
    fresh(db)
    invoice = db.scalar(select(Invoice).where(Invoice.number == 2))
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_minor == invoice.total_minor == 5200
    assert invoice.due_on == MARCH_16.date()  # nothing is owed later: the balance paid it
    allocation = db.scalar(
        select(PaymentAllocation).where(PaymentAllocation.invoice_id == invoice.id)
    )
    assert allocation.amount_minor == 5200 and "prepaid balance" in allocation.source
    assert db.get(Account, account.id).balance_minor == 10000 - 700 - 2 * 4500


def test_payments_go_to_the_oldest_open_invoices_and_leftovers_to_the_next(app, db):
    account = subscribed(db, make_reseller(db))
    usage(db, account, 500, datetime(2030, 2, 20, tzinfo=UTC), "u1")
    db.commit()
    run_cycle(app, FEB_15)  # 4500
    run_cycle(app, MARCH_16)  # 5000
    with app.app_context():
        session = portal_db.new_session()
        acct = session.get(Account, account.id)
        first = invoices.allocate_payment(session, account=acct, amount_minor=6000, source="Card")
        assert [part for _inv, part in first.allocated] == [4500, 1500]
        second = invoices.allocate_payment(session, account=acct, amount_minor=6000, source="Bank")
        assert [part for _inv, part in second.allocated] == [3500]
        assert second.unallocated_minor == 2500
        session.commit()
        assert invoices.unallocated_minor(session, account.id) == 2500
        session.close()
    fresh(db)
    assert {inv.number: inv.status for inv in db.scalars(select(Invoice))} == {
        1: InvoiceStatus.PAID,
        2: InvoiceStatus.PAID,
    }
    # The next invoice (4500) takes the 2500 leftover automatically.
    run_cycle(app, APRIL_16)
    fresh(db)
    third = db.scalar(select(Invoice).where(Invoice.number == 3))
    assert third.paid_minor == 2500 and third.status == InvoiceStatus.OPEN
    assert db.scalar(select(UnallocatedPayment)).remaining_minor == 0
    with app.app_context():
        session = portal_db.new_session()
        acct = session.get(Account, account.id)
        invoices.allocate_payment(session, account=acct, amount_minor=2000, source="Card")
        session.commit()
        session.close()
    fresh(db)
    assert db.get(Invoice, third.id).status == InvoiceStatus.PAID


@pytest.mark.parametrize("amount", [0, -5, 1.5])
def test_allocate_payment_refuses_bad_amounts(app, db, amount):
    account = subscribed(db, make_reseller(db))
    db.commit()
    with pytest.raises(ValueError, match=r"^amount_minor must be a positive int$"):
        invoices.allocate_payment(db, account=account, amount_minor=amount, source="x")


def test_one_minor_unit_is_a_payment_to_allocate(app, db):
    account = subscribed(db, make_reseller(db))
    db.commit()
    allocation = invoices.allocate_payment(db, account=account, amount_minor=1, source="x")
    assert (allocation.allocated, allocation.unallocated_minor) == ([], 1)
    assert invoices.unallocated_minor(db, account.id) == 1


def test_manual_payment_by_the_admin_is_allocated(app, db):
    from portal import credit

    account = subscribed(db, make_reseller(db))
    admin = make_user(db, role=Role.RESELLER_ADMIN)
    db.commit()
    run_cycle(app, FEB_15)
    with app.app_context():
        session = portal_db.new_session()
        acct = session.get(Account, account.id)
        credit.record_manual_payment(
            session,
            account=acct,
            amount_minor=6000,
            order_number="ORD-9",
            reason="Bank transfer",
            actor=session.get(type(admin), admin.id),
            idempotency_key="pay-1",
        )
        session.close()
    fresh(db)
    assert db.scalar(select(Invoice)).status == InvoiceStatus.PAID
    assert db.scalar(select(UnallocatedPayment)).remaining_minor == 1500


def test_pages_list_preview_and_print(client, db):
    reseller = make_reseller(db)
    account = subscribed(db, reseller)
    other = subscribed(db, reseller)
    user = make_user(db, account=account)
    db.commit()
    with client.application.app_context():
        session = portal_db.new_session()
        for acct_id in (account.id, other.id):
            invoices.generate_for_account(session, account_id=acct_id, now=FEB_15)
        session.close()
    mine = db.scalar(select(Invoice).where(Invoice.account_id == account.id))
    theirs = db.scalar(select(Invoice).where(Invoice.account_id == other.id))
    login(client, user.email)
    listing = client.get("/billing/invoices").get_data(as_text=True)
    assert f"INV-{reseller.id}-000001" in listing or f"INV-{reseller.id}-000002" in listing
    assert "Review billing details" in listing
    detail = client.get(f"/billing/invoices/{mine.id}")
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    assert "css/print.css" in html and "Print invoice" in html and "Plan 4500 plan" in html
    assert client.get(f"/billing/invoices/{theirs.id}").status_code == 404
    assert client.get("/billing/invoices/999999").status_code == 404
    preview = client.get("/billing/invoices/preview").get_data(as_text=True)
    assert "Review billing details" in preview and "Plan 4500 plan" in preview


def test_preview_without_subscription_says_so(client, db):
    account = make_account(db, reseller=make_reseller(db))
    user = make_user(db, account=account)
    db.commit()
    login(client, user.email)
    response = client.get("/billing/invoices/preview")
    assert response.status_code == 200
    assert "no active subscription" in response.get_data(as_text=True)


@pytest.mark.postgres
def test_two_runners_generate_one_invoice(pg_app, pg_db):
    reseller = make_reseller(pg_db)
    accounts = [subscribed(pg_db, reseller) for _ in range(3)]
    pg_db.commit()
    barrier = threading.Barrier(2)
    errors = []

    def runner():
        with pg_app.app_context():
            session = portal_db.new_session()
            try:
                barrier.wait()
                invoices.generate_due_invoices(session, now=FEB_15)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                session.close()

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    fresh(pg_db)
    rows = pg_db.scalars(select(Invoice).order_by(Invoice.number)).all()
    assert [inv.number for inv in rows] == [1, 2, 3]
    assert sorted(inv.account_id for inv in rows) == sorted(a.id for a in accounts)
    fees = pg_db.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.PLAN_FEE)
    )
    assert fees == 3
