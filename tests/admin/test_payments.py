"""Admin Payments: scoped per reseller; search; refunds (full or partial, reason, idempotent,
audited) through localstripe, each debiting the balance once even when the webhook for the
same refund arrives too."""

from __future__ import annotations

import uuid

import pytest

from portal import db as portal_db
from portal.ledger import audit_balances
from portal.models import (
    Account,
    AuditLog,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentPurpose,
    PaymentRefund,
    PaymentStatus,
)
from portal.payments import gateway, service
from tests.admin.helpers import make_tenant
from tests.builders import login
from tests.payments.conftest import post_event

pytestmark = pytest.mark.stripe
HTMX = {"HX-Request": "true"}


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def tenants(db):
    acme = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    beta = make_tenant(db, name="Beta", admin_email="admin@beta.test")
    db.commit()
    return acme, beta


def paid(app, account_id: int, amount: int = 2000) -> int:
    """A real card payment through localstripe, credited to the account."""
    with app.app_context():
        session = portal_db.session()
        account = session.get(Account, account_id)
        customer_id = gateway.ensure_customer(session, account)
        info = gateway.create_test_card(customer_id, "4242424242424242")
        card = service.link_card(session, account=account, info=info)
        payment = service.charge_card(
            session,
            account=account,
            card=card,
            amount_minor=amount,
            purpose=PaymentPurpose.TOPUP,
            idempotency_key=uuid.uuid4().hex,
        )
        assert payment.status == PaymentStatus.SUCCEEDED
        return payment.id


def refund(client, payment_id, *, amount="", reason="Customer asked", key=None):
    data = {"amount": amount, "reason": reason, "idempotency_key": key or uuid.uuid4().hex}
    return client.post(f"/admin/payments/{payment_id}/refund", data=data, headers=HTMX)


def balance(db, account_id):
    db.rollback()
    return db.get(Account, account_id).balance_minor


def test_the_list_is_scoped_and_searchable(app, client, db, tenants):
    acme, beta = tenants
    mine = paid(app, acme.prepaid.id)
    theirs = paid(app, beta.prepaid.id)
    login(client, "admin@acme.test")
    html = client.get("/admin/payments").get_data(as_text=True)
    assert f"Payment {mine}<" in html and f"Payment {theirs}<" not in html
    found = client.get(f"/admin/payments?q={acme.prepaid.number}", headers=HTMX).get_data(
        as_text=True
    )
    assert f"Payment {mine}<" in found and "<html" not in found
    assert "No payments match" in client.get("/admin/payments?status=refunded").get_data(
        as_text=True
    )
    assert client.get(f"/admin/payments/{theirs}").status_code == 404
    assert refund(client, theirs).status_code == 404
    assert balance(db, beta.prepaid.id) == 2000


def test_partial_then_full_refund_debits_once_each_and_is_audited(app, client, db, tenants):
    acme, _ = tenants
    payment_id = paid(app, acme.prepaid.id)
    login(client, "admin@acme.test")
    key = uuid.uuid4().hex
    html = refund(client, payment_id, amount="5.00", key=key).get_data(as_text=True)
    assert "Refund of £5.00 sent to Stripe." in html
    assert balance(db, acme.prepaid.id) == 1500
    refund(client, payment_id, amount="5.00", key=key)  # double click: same form key
    assert balance(db, acme.prepaid.id) == 1500
    row = db.query(PaymentRefund).one()
    assert row.stripe_refund_id.startswith("re_") and row.reason == "Customer asked"
    assert db.get(Payment, payment_id).status == PaymentStatus.PARTIALLY_REFUNDED
    # Stripe's webhook for the same refund changes nothing.
    charge = {
        "id": db.get(Payment, payment_id).stripe_charge_id,
        "payment_intent": db.get(Payment, payment_id).stripe_payment_intent_id,
        "amount_refunded": 500,
        "refunds": {"data": [{"id": row.stripe_refund_id, "amount": 500, "status": "succeeded"}]},
    }
    post_event(client, "charge.refunded", charge)
    assert balance(db, acme.prepaid.id) == 1500
    # The rest: an empty amount refunds everything left.
    assert "Refund of £15.00" in refund(client, payment_id).get_data(as_text=True)
    assert balance(db, acme.prepaid.id) == 0
    assert db.get(Payment, payment_id).status == PaymentStatus.REFUNDED
    entries = db.query(LedgerEntry).filter_by(kind=EntryKind.REFUND).all()
    assert sorted(e.amount_minor for e in entries) == [-1500, -500]
    audits = db.query(AuditLog).filter_by(action="payment.refund").all()
    assert len(audits) == 2 and all(a.actor_user_id == acme.admin.id for a in audits)
    assert "Nothing to refund" in client.get(f"/admin/payments/{payment_id}").get_data(as_text=True)
    assert audit_balances(db) == []


@pytest.mark.parametrize(
    "amount,reason,message",
    [
        ("25.00", "Too much", "At most £20.00 can still be refunded."),
        ("0", "Zero", "greater than zero"),
        ("abc", "Bad", ""),
        ("5.00", "", "required"),
        ("5.001", "Decimals", ""),
    ],
)
def test_bad_refunds_are_refused_and_change_nothing(
    app, client, db, tenants, amount, reason, message
):
    acme, _ = tenants
    payment_id = paid(app, acme.prepaid.id)
    login(client, "admin@acme.test")
    response = refund(client, payment_id, amount=amount, reason=reason)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "alert-error" in html and message in html
    assert balance(db, acme.prepaid.id) == 2000
    assert db.query(PaymentRefund).count() == 0


def test_a_payment_that_never_succeeded_cannot_be_refunded(app, client, db, tenants):
    acme, _ = tenants
    payment = Payment(
        account_id=acme.prepaid.id,
        purpose=PaymentPurpose.TOPUP,
        amount_minor=1000,
        currency="GBP",
        idempotency_key=uuid.uuid4().hex,
        status=PaymentStatus.FAILED,
    )
    db.add(payment)
    db.commit()
    login(client, "admin@acme.test")
    assert "did not succeed" in client.get(f"/admin/payments/{payment.id}").get_data(as_text=True)
    html = refund(client, payment.id, amount="1.00").get_data(as_text=True)
    assert "Only a succeeded card payment can be refunded." in html
    assert db.query(PaymentRefund).count() == 0
