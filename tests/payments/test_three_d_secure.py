"""3-D Secure without a browser: localstripe's 3-D Secure card (4000002500003155) answers
requires_action; the customer's confirmation is what localstripe's Stripe.js would send
(POST /v1/payment_intents/<id>/_authenticate); our server then settles from Stripe's state.
The off-session automatic top-up is marked, tries the secondary, and emails a link."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from portal import autorecharge
from portal import db as portal_db
from portal.models import (
    Account,
    AttemptStatus,
    AutoRechargeSetting,
    OutboxEmail,
    Payment,
    PaymentPurpose,
    PaymentStatus,
    TopupProduct,
)
from portal.payments import gateway
from tests.builders import make_customer
from tests.payments.conftest import HTMX, add_test_card

pytestmark = pytest.mark.stripe
NEEDS_3DS = "4000002500003155"
GOOD = "5555555555554444"


@pytest.fixture
def product(db):
    row = TopupProduct(amount_minor=1000, currency="GBP", label="£10")
    db.add(row)
    db.commit()
    return row.id


def bank_answers(app, localstripe_url: str, payment_id: int, success: bool) -> None:
    """What localstripe's Stripe.js does when the customer completes (or fails) 3-D Secure."""
    with app.app_context():
        session = portal_db.session()
        intent_id = session.get(Payment, payment_id).stripe_payment_intent_id
        secret = gateway.payment_intent_client_secret(intent_id)
    request = urllib.request.Request(
        f"{localstripe_url}/v1/payment_intents/{intent_id}/_authenticate?success={str(success).lower()}",
        data=json.dumps({"key": "pk_test_x", "client_secret": secret}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5).read()


def top_up(client, product_id):
    data = {"product_id": str(product_id), "idempotency_key": uuid.uuid4().hex}
    return client.post("/billing/balance/topup", data=data, headers=HTMX)


def test_on_session_top_up_completes_after_the_bank_confirms(
    app, client, db, signed_in, product, localstripe_url
):
    add_test_card(app, signed_in.account_id, NEEDS_3DS)
    html = top_up(client, product).get_data(as_text=True)
    assert "Confirm payment with your bank" in html
    payment = db.query(Payment).one()
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    # Finishing before the bank answered changes nothing.
    done = f"/billing/payments/{payment.id}/authenticate"
    assert "has not confirmed" in client.post(done, headers=HTMX).get_data(as_text=True)
    bank_answers(app, localstripe_url, payment.id, success=True)
    html = client.post(done, headers=HTMX).get_data(as_text=True)
    assert "£10.00 added to your balance" in html
    client.post(done, headers=HTMX)  # a second click
    db.rollback()
    assert db.get(Account, signed_in.account_id).balance_minor == 1000
    assert db.get(Payment, payment.id).status == PaymentStatus.SUCCEEDED


def test_a_failed_authentication_takes_nothing(
    app, client, db, signed_in, product, localstripe_url
):
    add_test_card(app, signed_in.account_id, NEEDS_3DS)
    top_up(client, product)
    payment = db.query(Payment).one()
    bank_answers(app, localstripe_url, payment.id, success=False)
    html = client.post(f"/billing/payments/{payment.id}/authenticate", headers=HTMX).get_data(
        as_text=True
    )
    assert "No money was taken" in html
    db.rollback()
    assert db.get(Account, signed_in.account_id).balance_minor == 0
    assert db.get(Payment, payment.id).status == PaymentStatus.FAILED


def test_another_customers_payment_is_not_found(app, client, db, signed_in, product):
    other = make_customer(db)
    db.commit()
    add_test_card(app, other.account_id, NEEDS_3DS)
    with app.app_context():
        from portal.payments import service

        session = portal_db.session()
        account = session.get(Account, other.account_id)
        service.charge_with_backup(
            session,
            account=account,
            amount_minor=500,
            purpose=PaymentPurpose.TOPUP,
            idempotency_key=uuid.uuid4().hex,
            on_session=True,
        )
    payment = db.query(Payment).one()
    assert client.get(f"/billing/payments/{payment.id}/authenticate").status_code == 404
    assert client.post(f"/billing/payments/{payment.id}/authenticate").status_code == 404


def _auto_recharge(app, db, account_id):
    db.add(
        AutoRechargeSetting(
            account_id=account_id, enabled=True, threshold_minor=500, amount_minor=2000
        )
    )
    db.commit()
    with app.app_context():
        return autorecharge.recharge_if_needed(portal_db.session(), account_id=account_id)


def test_off_session_needing_authentication_tries_the_secondary_and_asks_nobody(app, db, signed_in):
    add_test_card(app, signed_in.account_id, NEEDS_3DS)
    add_test_card(app, signed_in.account_id, GOOD)
    attempt = _auto_recharge(app, db, signed_in.account_id)
    assert attempt.status == AttemptStatus.SUCCEEDED
    db.rollback()
    payments = db.query(Payment).order_by(Payment.id).all()
    assert [(p.status, p.needs_authentication) for p in payments] == [
        (PaymentStatus.REQUIRES_ACTION, True),
        (PaymentStatus.SUCCEEDED, False),
    ]
    assert db.get(Account, signed_in.account_id).balance_minor == 2000
    # The backup card paid: asking to confirm the first one would top up twice.
    assert db.query(OutboxEmail).filter(OutboxEmail.subject.contains("confirm")).count() == 0


def test_off_session_needing_authentication_emails_a_link_that_finishes_it(
    app, client, db, signed_in, localstripe_url
):
    add_test_card(app, signed_in.account_id, NEEDS_3DS)
    attempt = _auto_recharge(app, db, signed_in.account_id)
    assert attempt.status == AttemptStatus.FAILED
    db.rollback()
    payment = db.query(Payment).one()
    assert payment.needs_authentication is True
    mail = db.query(OutboxEmail).filter(OutboxEmail.subject.contains("confirm")).one()
    link = f"/billing/payments/{payment.id}/authenticate"
    assert link in mail.body
    # The balance page's Add-credit panel shows it too, with the same link.
    panel = client.get("/billing/balance/add-credit").get_data(as_text=True)
    assert f'href="{link}"' in panel
    page = client.get(link).get_data(as_text=True)
    assert "Confirm payment with your bank" in page and 'data-client-secret="pi_' in page
    bank_answers(app, localstripe_url, payment.id, success=True)
    client.post(link)
    db.rollback()
    assert db.get(Account, signed_in.account_id).balance_minor == 2000
