"""Receipts: every successful card payment gets one, numbered gap-free per reseller, with
a page, a PDF and an email carrying the PDF. Runs against the session's localstripe."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from portal import autorecharge
from portal import db as portal_db
from portal.ledger import audit_balances, post_entry
from portal.models import (
    Account,
    AutoRechargeSetting,
    EntryKind,
    OutboxEmail,
    Payment,
    PaymentCard,
    PaymentPurpose,
    PaymentStatus,
    Receipt,
    TopupProduct,
)
from portal.payments import service
from tests.builders import login, make_customer, make_reseller
from tests.payments.conftest import HTMX, add_test_card

pytestmark = pytest.mark.stripe


@pytest.fixture
def app_config(stripe_config):
    return {**stripe_config, "AFTER_DEBIT_CHECKS": "off"}


@pytest.fixture
def product(db):
    row = TopupProduct(amount_minor=2000, currency="GBP", label="£20")
    db.add(row)
    db.commit()
    return row.id


def top_up(client, product_id, key=None):
    return client.post(
        "/billing/balance/topup",
        data={"product_id": str(product_id), "idempotency_key": key or uuid.uuid4().hex},
        headers=HTMX,
    )


def receipts_of(db, account_id) -> list[Receipt]:
    db.rollback()
    return list(
        db.scalars(select(Receipt).where(Receipt.account_id == account_id).order_by(Receipt.id))
    )


def pdf_text(data: bytes) -> str:
    return " ".join(
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split()
    )


def test_each_top_up_gets_one_numbered_receipt_with_page_pdf_and_email(app, client, db, product):
    user = make_customer(db, email="payer@example.test")
    db.commit()
    add_test_card(app, user.account_id)
    login(client, user.email)
    key = uuid.uuid4().hex
    assert "£20.00 added" in top_up(client, product, key).get_data(as_text=True)
    top_up(client, product, key)  # the same form again: no second payment, no second receipt
    top_up(client, product)
    receipts = receipts_of(db, user.account_id)
    assert [r.number for r in receipts] == [1, 2]
    assert {r.payment_id for r in receipts} == {p.id for p in db.scalars(select(Payment))}
    first = receipts[0]
    assert (first.amount_minor, first.description, first.method) == (
        2000,
        "Top-up by card",
        "Visa •••• 4242",
    )
    number = f"RCP-{first.reseller_id}-000001"

    page = client.get(f"/billing/receipts/{first.id}").get_data(as_text=True)
    assert f"Receipt {number}" in page and "£20.00" in page and "Visa •••• 4242" in page
    assert f'href="/billing/receipts/{first.id}.pdf"' in page
    response = client.get(f"/billing/receipts/{first.id}.pdf")
    assert response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    assert f"Receipt {number}" in text and "Total £20.00" in text
    assert "Paid £20.00" in text and "Amount due £0.00" in text

    mails = db.scalars(select(OutboxEmail).where(OutboxEmail.account_id == user.account_id)).all()
    receipt_mail = next(m for m in mails if m.dedupe_key == f"receipt:{first.id}")
    assert receipt_mail.subject == f"Receipt {number}: £20.00 received"
    assert receipt_mail.attachments == f"receipt:{first.id}"
    assert "£20.00" in receipt_mail.body and "<strong>£20.00</strong>" in receipt_mail.html_body
    assert len([m for m in mails if m.dedupe_key.startswith("receipt:")]) == 2
    assert audit_balances(db) == []


def test_a_replayed_success_keeps_one_receipt(app, client, db, product):
    user = make_customer(db)
    db.commit()
    add_test_card(app, user.account_id)
    login(client, user.email)
    top_up(client, product)
    payment = db.scalar(select(Payment))
    # The webhook arriving after the synchronous answer settles the same payment again.
    with app.app_context():
        service.settle_payment_succeeded(
            portal_db.session(), payment_intent_id=payment.stripe_payment_intent_id
        )
    assert [r.payment_id for r in receipts_of(db, user.account_id)] == [payment.id]


def test_numbers_are_gap_free_per_reseller_and_failures_get_none(app, client, db, product):
    reseller = make_reseller(db)
    alice = make_customer(db, reseller=reseller)
    bob = make_customer(db, reseller=reseller)
    carol = make_customer(db)  # another reseller: her own sequence
    db.commit()
    for user in (alice, bob, carol):
        add_test_card(app, user.account_id)
    declining = make_customer(db, reseller=reseller)
    db.commit()
    add_test_card(app, declining.account_id, "4000000000000341")
    for user in (alice, declining, bob, alice, carol):
        client.post("/logout")
        login(client, user.email)
        top_up(client, product)
    db.rollback()
    issued = [
        (r.number, r.account_id)
        for r in db.scalars(
            select(Receipt).where(Receipt.reseller_id == reseller.id).order_by(Receipt.id)
        )
    ]
    assert issued == [(1, alice.account_id), (2, bob.account_id), (3, alice.account_id)]
    assert [r.number for r in receipts_of(db, carol.account_id)] == [1]
    failed = db.scalar(select(Payment).where(Payment.account_id == declining.account_id))
    assert failed.status == PaymentStatus.FAILED


def test_automatic_top_up_and_invoice_payments_get_receipts(app, db):
    user = make_customer(db, email="auto@example.test")
    account_id = user.account_id
    post_entry(
        db,
        account_id=account_id,
        kind=EntryKind.TOPUP,
        amount_minor=100,
        description="Opening",
        idempotency_key="open",
    )
    db.add(
        AutoRechargeSetting(
            account_id=account_id, enabled=True, threshold_minor=500, amount_minor=1500
        )
    )
    db.commit()
    card_id = add_test_card(app, account_id)
    with app.app_context():
        session = portal_db.new_session()
        autorecharge.recharge_if_needed(session, account_id=account_id)
        account = session.get(Account, account_id)
        service.charge_card(
            session,
            account=account,
            card=session.get(PaymentCard, card_id),
            amount_minor=4500,
            purpose=PaymentPurpose.INVOICE,
            idempotency_key="pay-invoice-1",
        )
        session.close()
    receipts = receipts_of(db, account_id)
    assert [(r.number, r.description, r.amount_minor) for r in receipts] == [
        (1, "Automatic top-up by card", 1500),
        (2, "Invoice payment by card", 4500),
    ]


def test_history_links_each_card_payment_to_its_receipt(app, client, db, product):
    user = make_customer(db)
    db.commit()
    add_test_card(app, user.account_id)
    login(client, user.email)
    fragment = top_up(client, product).get_data(as_text=True)
    receipt = receipts_of(db, user.account_id)[0]
    link = f'href="/billing/receipts/{receipt.id}"'
    assert link in fragment  # the history swapped in after the top-up
    assert link in client.get("/billing/balance").get_data(as_text=True)
    listing = client.get("/billing/receipts").get_data(as_text=True)
    assert link in listing and re.search(r"RCP-\d+-000001", listing)
    other = make_customer(db)
    db.commit()
    client.post("/logout")
    login(client, other.email)
    assert client.get(f"/billing/receipts/{receipt.id}").status_code == 404
    assert client.get(f"/billing/receipts/{receipt.id}.pdf").status_code == 404
    assert link not in client.get("/billing/receipts").get_data(as_text=True)
