"""Edges of the billing model found in review: each test failed before its fix."""

from __future__ import annotations

from datetime import UTC, date

import pytest
from sqlalchemy import select

from portal import invoices, ledger, plans
from portal.invoices import allocate_payment
from portal.models import (
    Account,
    BillingModel,
    EntryKind,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    OutboxEmail,
    TransferSetting,
    UnallocatedPayment,
)
from portal.transfers import transfer_funds
from tests.builders import make_account, make_reseller
from tests.invoices.test_billing_model import at, customer, generate, usage


def pay(db, account, amount, key, when):
    locked = ledger.lock_account(db, account.id)
    ledger.post_entry(
        db,
        account_id=account.id,
        account=locked,
        kind=EntryKind.PAYMENT,
        amount_minor=amount,
        description="Bank",
        idempotency_key=key,
        at=when,
    )
    allocate_payment(db, account=locked, amount_minor=amount, source="Bank")
    db.commit()


def owed_on_invoices(db, account) -> int:
    """What the open invoices ask for, less credit waiting for the next invoice."""
    db.expire_all()
    rows = db.scalars(
        select(Invoice).where(Invoice.account_id == account.id, Invoice.status.in_(invoices.UNPAID))
    )
    return sum(i.total_minor - i.paid_minor for i in rows) - invoices.unallocated_minor(
        db, account.id
    )


def test_void_of_a_paid_invoice_pays_the_open_one_at_once(app, db, catalogue):
    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    (inv1,) = generate(db, bob, at(date(2026, 11, 14), 1))
    pay(db, bob, 2500, "p1", at(date(2026, 11, 20)))
    (inv2,) = generate(db, bob, at(date(2026, 12, 14), 1))
    invoices.void_invoice(
        db, invoice=inv1, reason="Wrong plan", actor_user_id=None, now=at(date(2026, 12, 15))
    )
    db.expire_all()
    assert db.get(Account, bob.id).balance_minor == 0  # Bob owes nothing ...
    with app.app_context():
        sent = invoices.collect_overdue(db, now=at(date(2026, 12, 29)))
    inv2 = db.get(Invoice, inv2.id)
    assert (inv2.paid_minor, inv2.status, sent) == (2500, InvoiceStatus.PAID, 0)  # ... nor later
    assert owed_on_invoices(db, bob) == -db.get(Account, bob.id).balance_minor


@pytest.mark.parametrize("billed_until", ["migrated", None])
def test_the_first_invoice_after_an_old_model_invoice_does_not_bill_its_usage_again(
    db, catalogue, billed_until
):
    # An invoice of the old model: 14 Oct - 13 Nov billed in arrears on 14 Nov with its usage.
    bob = customer(
        db, catalogue["Professional"], model=BillingModel.POSTPAID, started=date(2026, 10, 14)
    )
    usage(db, bob, 1240, at(date(2026, 10, 20)), "october")
    legacy = Invoice(
        reseller_id=bob.reseller_id,
        account_id=bob.id,
        number=1,
        period_start=date(2026, 10, 14),
        period_end=date(2026, 11, 13),
        currency="GBP",
        subtotal_minor=3740,
        total_minor=3740,
        paid_minor=0,
        status=InvoiceStatus.OPEN,
        issued_at=at(date(2026, 11, 14), 1),
        # what migration 0002 stores for it, or nothing at all
        billed_until=at(date(2026, 11, 14), 0) if billed_until else None,
    )
    legacy.lines = [
        InvoiceLine(kind="plan_fee", description="fee", amount_minor=2500),
        InvoiceLine(kind="usage", description="Call usage", amount_minor=1240),
    ]
    db.add_all([legacy, InvoiceCounter(reseller_id=bob.reseller_id, last_number=1)])
    db.commit()
    (nxt,) = generate(db, bob, at(date(2026, 11, 14), 2))
    assert sorted((line.kind, line.amount_minor) for line in nxt.lines) == [("plan_fee", 2500)]
    # Resending the old invoice (no due date) works.
    with pytest.MonkeyPatch.context():
        invoices.send_invoice(
            db, invoice=legacy, account=bob, now=at(date(2026, 11, 15)), resend=True
        )
    db.commit()
    mail = db.scalar(
        select(OutboxEmail).where(OutboxEmail.dedupe_key.like(f"invoice:{legacy.id}:resend:%"))
    )
    assert mail is not None and "£37.40" in mail.body


def test_a_preview_that_no_longer_holds_is_not_confirmed(db, catalogue):
    account = customer(db, catalogue["Professional"], model=BillingModel.PREPAID)
    generate(db, account, at(date(2026, 11, 14), 1))
    shown = plans.preview_plan_change(
        db, account=account, plan_id=catalogue["Complete"].id, today=date(2026, 12, 13)
    )
    assert shown.charge_minor == 67  # "1 of 30 days left", at 23:59 on 13 Dec
    before = db.get(Account, account.id).balance_minor
    with pytest.raises(plans.PlanChangeRefused, match="terms changed since your preview"):
        plans.change_plan(
            db,
            account=account,
            plan_id=catalogue["Complete"].id,
            actor_user_id=None,
            idempotency_key="plan:x",
            now=at(date(2026, 12, 14), 0),  # confirmed after midnight: a new period began
            confirmed_terms=shown.terms,
        )
    db.expire_all()
    assert db.get(Account, account.id).balance_minor == before
    # Confirmed the same day, the terms hold and exactly the preview is charged.
    plans.change_plan(
        db,
        account=account,
        plan_id=catalogue["Complete"].id,
        actor_user_id=None,
        idempotency_key="plan:y",
        now=at(date(2026, 12, 13), 23),
        confirmed_terms=shown.terms,
    )
    db.expire_all()
    assert before - db.get(Account, account.id).balance_minor == 67


def test_postpaid_invoices_add_up_to_the_balance_whatever_moves_it(app, db, catalogue):
    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    carol = customer(
        db, catalogue["Professional"], model=BillingModel.POSTPAID, reseller=bob.reseller
    )
    for account in (bob, carol):
        account.transfers = TransferSetting.YES
    db.commit()
    generate(db, bob, at(date(2026, 11, 14), 1))
    generate(db, carol, at(date(2026, 11, 14), 1))
    # Bob gives £200 away on credit; Carol's transfer in pays her open invoice.
    transfer_funds(
        db,
        sender_account=bob,
        recipient_number=carol.number,
        amount_minor=20000,
        actor_user_id=None,
        idempotency_key="transfer:t1",
    )
    assert owed_on_invoices(db, carol) == -db.get(Account, carol.id).balance_minor
    assert db.scalar(select(Invoice.status).where(Invoice.account_id == carol.id)) == "paid"
    (inv2,) = generate(db, bob, at(date(2026, 12, 14), 1))
    assert ("transfer_out", 20000) in [(line.kind, line.amount_minor) for line in inv2.lines]
    assert owed_on_invoices(db, bob) == -db.get(Account, bob.id).balance_minor == 2 * 2500 + 20000
    generate(db, carol, at(date(2026, 12, 14), 1))
    assert owed_on_invoices(db, carol) == -db.get(Account, carol.id).balance_minor


def test_credits_to_a_prepaid_account_settle_no_invoice(db, catalogue):
    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    dan = make_account(db, reseller=bob.reseller, transfers=TransferSetting.YES)
    bob.transfers = TransferSetting.YES
    db.commit()
    transfer_funds(
        db,
        sender_account=bob,
        recipient_number=dan.number,
        amount_minor=1000,
        actor_user_id=None,
        idempotency_key="transfer:t2",
    )
    assert invoices.unallocated_minor(db, dan.id) == 0


# --- Found by mutation testing (issue 16) ----------------------------------------------------


def open_invoice(db, account, number, start, total):
    invoice = Invoice(
        reseller_id=account.reseller_id,
        account_id=account.id,
        number=number,
        period_start=start,
        period_end=start,
        currency="GBP",
        subtotal_minor=total,
        total_minor=total,
        paid_minor=0,
        status=InvoiceStatus.OPEN,
    )
    db.add(invoice)
    db.flush()
    return invoice


def test_a_payment_pays_the_oldest_period_first_whatever_the_invoice_ids(db):
    bob = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    december = open_invoice(db, bob, 1, date(2026, 12, 14), 2500)
    november = open_invoice(db, bob, 2, date(2026, 11, 14), 2500)  # a later id, an older period
    allocation = allocate_payment(db, account=bob, amount_minor=3000, source="Bank")
    assert allocation.allocated == [(november, 2500), (december, 500)]
    assert (november.status, december.status) == (InvoiceStatus.PAID, InvoiceStatus.OPEN)


def test_a_payment_skips_invoices_with_nothing_due_and_pays_a_single_unit_owed(db):
    bob = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    settled = open_invoice(db, bob, 1, date(2026, 10, 14), 0)  # open, yet nothing is due
    tiny = open_invoice(db, bob, 2, date(2026, 11, 14), 1)
    december = open_invoice(db, bob, 3, date(2026, 12, 14), 2500)
    allocation = allocate_payment(db, account=bob, amount_minor=2000, source="Bank")
    assert allocation.allocated == [(tiny, 1), (december, 1999)]
    assert allocation.unallocated_minor == 0
    assert invoices.allocations_of(db, settled.id) == []


def test_a_payment_for_one_invoice_goes_to_it_first(db):
    bob = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    november = open_invoice(db, bob, 1, date(2026, 11, 14), 2500)
    december = open_invoice(db, bob, 2, date(2026, 12, 14), 2500)
    allocation = allocate_payment(
        db, account=bob, amount_minor=3000, source="Pay now", first_invoice_id=december.id
    )
    assert allocation.allocated == [(december, 2500), (november, 500)]


def test_unallocated_payments_pay_the_new_invoice_oldest_first_exactly_what_is_due(db, catalogue):
    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    used_up = UnallocatedPayment(
        account_id=bob.id, amount_minor=100, remaining_minor=0, currency="GBP", source="Old"
    )
    db.add(used_up)
    db.flush()
    leftovers = [used_up]
    for amount in (1, 2498, 1000, 5000):
        allocate_payment(db, account=bob, amount_minor=amount, source=f"Bank {amount}")
        leftovers.append(
            db.scalars(select(UnallocatedPayment).order_by(UnallocatedPayment.id)).all()[-1]
        )
    db.commit()
    when = at(date(2026, 11, 14), 1)
    (invoice,) = generate(db, bob, when)
    paid = invoices.allocations_of(db, invoice.id)
    assert [(a.amount_minor, a.source) for a in paid] == [
        (1, f"Unallocated payment #{leftovers[1].id}: Bank 1"),
        (2498, f"Unallocated payment #{leftovers[2].id}: Bank 2498"),
        (1, f"Unallocated payment #{leftovers[3].id}: Bank 1000"),
    ]
    assert {a.created_at.replace(tzinfo=UTC) for a in paid} == {when}
    assert [p.remaining_minor for p in leftovers] == [0, 0, 0, 999, 5000]
    assert (invoice.paid_minor, invoice.status) == (2500, InvoiceStatus.PAID)


def test_payment_sources_are_cut_to_200_characters(db):
    bob = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    november = open_invoice(db, bob, 1, date(2026, 11, 14), 2500)
    allocate_payment(db, account=bob, amount_minor=3000, source="s" * 250)
    (allocation,) = invoices.allocations_of(db, november.id)
    leftover = db.scalar(select(UnallocatedPayment).where(UnallocatedPayment.account_id == bob.id))
    assert (len(allocation.source), len(leftover.source)) == (200, 200)


def test_a_postpaid_credit_of_one_unit_settles_and_of_zero_settles_nothing(db):
    bob = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    invoices.settle_credit(db, account=bob, amount_minor=0, source="Nothing")
    assert invoices.unallocated_minor(db, bob.id) == 0
    invoices.settle_credit(db, account=bob, amount_minor=1, source="Voucher")
    assert invoices.unallocated_minor(db, bob.id) == 1


def test_an_account_without_a_subscription_gets_no_invoice(db):
    dan = make_account(db, reseller=make_reseller(db), model=BillingModel.POSTPAID)
    db.commit()
    assert invoices.generate_for_account(db, account_id=dan.id, now=at(date(2026, 11, 14))) == []


def test_the_billing_run_takes_the_fee_at_its_own_time(db, catalogue):
    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    when = at(date(2026, 11, 14), 1)
    generate(db, bob, when)
    fee = ledger.find_entry(db, bob.id, "plan-fee:2026-11-14")
    assert (fee.amount_minor, fee.created_at.replace(tzinfo=UTC)) == (-2500, when)


def test_a_prepaid_invoice_is_paid_from_the_balance_at_the_runs_time(db, catalogue):
    alice = customer(db, catalogue["Professional"], model=BillingModel.PREPAID)
    when = at(date(2026, 11, 14), 1)
    (invoice,) = generate(db, alice, when)
    (paid,) = invoices.allocations_of(db, invoice.id)
    assert (paid.amount_minor, paid.source) == (2500, "Paid from the prepaid balance")
    assert paid.created_at.replace(tzinfo=UTC) == when
