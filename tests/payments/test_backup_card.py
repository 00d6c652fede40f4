"""The backup card pays whenever the portal charges a card and the primary fails.

Real charges through localstripe: 4000000000000341 attaches but is declined when charged,
4242424242424242 succeeds. Each card attempt has its own idempotency key.
"""

from __future__ import annotations

import uuid

import pytest

from portal import db as portal_db
from portal.ledger import audit_balances
from portal.models import (
    Account,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentPurpose,
    PaymentStatus,
    TopupProduct,
)
from portal.payments import service
from tests.payments.conftest import HTMX, add_test_card

DECLINES = "4000000000000341"
GOOD = "5555555555554444"

pytestmark = pytest.mark.stripe


@pytest.fixture
def ten_pounds(db):
    product = TopupProduct(amount_minor=1000, currency="GBP", label="£10")
    db.add(product)
    db.commit()
    return product.id


def test_primary_declined_secondary_good_the_top_up_succeeds_on_the_secondary(
    app, client, db, signed_in, ten_pounds
):
    add_test_card(app, signed_in.account_id, DECLINES)  # primary
    add_test_card(app, signed_in.account_id, GOOD)  # secondary
    request_key = uuid.uuid4().hex
    form = {"product_id": str(ten_pounds), "idempotency_key": request_key}
    html = client.post("/billing/balance/topup", data=form, headers=HTMX).get_data(as_text=True)
    assert "£10.00 added to your balance" in html
    assert "backup card" in html and "4444" in html
    db.rollback()
    assert db.get(Account, signed_in.account_id).balance_minor == 1000
    payments = db.query(Payment).order_by(Payment.id).all()
    assert [(p.paid_by_role, p.status) for p in payments] == [
        ("primary", PaymentStatus.FAILED),
        ("secondary", PaymentStatus.SUCCEEDED),
    ]
    keys = [p.idempotency_key for p in payments]
    assert len(set(keys)) == 2 and all(k.startswith(f"topup:{signed_in.account_id}:") for k in keys)
    # The same form submitted again replays both attempts: no third payment, no second credit.
    client.post("/billing/balance/topup", data=form, headers=HTMX)
    db.rollback()
    assert db.query(Payment).count() == 2
    assert db.get(Account, signed_in.account_id).balance_minor == 1000
    assert audit_balances(db) == []


def test_both_cards_declined_says_so_and_credits_nothing(app, client, db, signed_in, ten_pounds):
    add_test_card(app, signed_in.account_id, DECLINES)
    add_test_card(app, signed_in.account_id, DECLINES)
    form = {"product_id": str(ten_pounds), "idempotency_key": uuid.uuid4().hex}
    html = client.post("/billing/balance/topup", data=form, headers=HTMX).get_data(as_text=True)
    assert "No card could pay" in html and "primary card" in html and "secondary card" in html
    db.rollback()
    assert db.get(Account, signed_in.account_id).balance_minor == 0
    assert db.query(Payment).filter_by(status=PaymentStatus.FAILED).count() == 2


def test_a_good_primary_never_touches_the_secondary(app, client, db, signed_in, ten_pounds):
    add_test_card(app, signed_in.account_id, GOOD)
    add_test_card(app, signed_in.account_id, DECLINES)
    form = {"product_id": str(ten_pounds), "idempotency_key": uuid.uuid4().hex}
    html = client.post("/billing/balance/topup", data=form, headers=HTMX).get_data(as_text=True)
    assert "£10.00 added to your balance." in html and "backup" not in html
    db.rollback()
    assert [p.paid_by_role for p in db.query(Payment).all()] == ["primary"]


def test_charge_with_backup_pays_an_invoice_amount_and_says_which_card(app, db, signed_in):
    add_test_card(app, signed_in.account_id, DECLINES)
    add_test_card(app, signed_in.account_id, GOOD)
    with app.app_context():
        session = portal_db.session()
        outcome = service.charge_with_backup(
            session,
            account=session.get(Account, signed_in.account_id),
            amount_minor=2500,
            purpose=PaymentPurpose.INVOICE,
            idempotency_key=f"invoice-test:{uuid.uuid4().hex}",
            on_session=False,
        )
        assert (outcome.succeeded, outcome.paid_by) == (True, "secondary")
        assert len(outcome.tried) == 2 and "declined" in outcome.failures()[0]
    db.rollback()
    entry = db.query(LedgerEntry).one()
    assert (entry.kind, entry.amount_minor) == (EntryKind.PAYMENT, 2500)
