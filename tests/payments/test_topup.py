"""Add credit: the primary card is charged through localstripe; the balance is credited once."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from portal import db as portal_db
from portal.models import (
    Account,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentCard,
    PaymentPurpose,
    PaymentStatus,
    TopupProduct,
    utcnow,
)
from portal.payments import gateway, service
from tests.payments.conftest import HTMX, add_test_card


@pytest.fixture
def products(db):
    rows = [
        TopupProduct(amount_minor=1000, currency="GBP", label="£10"),
        TopupProduct(amount_minor=2000, currency="GBP", label="£20"),
        TopupProduct(amount_minor=5000, currency="GBP", label="£50", active=False),
        TopupProduct(amount_minor=2000, currency="USD", label="$20"),
    ]
    db.add_all(rows)
    db.commit()
    return {p.label: p.id for p in rows}


def key() -> str:
    return uuid.uuid4().hex


def money_state(db, account_id: int) -> tuple[int, int]:
    db.rollback()
    balance = db.get(Account, account_id).balance_minor
    return balance, db.query(LedgerEntry).filter_by(account_id=account_id).count()


def top_up(client, product_id, idempotency_key=None, htmx=True):
    return client.post(
        "/billing/balance/topup",
        data={"product_id": str(product_id), "idempotency_key": idempotency_key or key()},
        headers=HTMX if htmx else {},
    )


def test_balance_page_offers_active_products_in_the_account_currency(
    app, client, signed_in, products
):
    add_test_card(app, signed_in.account_id)
    # The balance page loads its Add-credit panel from here (HTMX); without HTMX, a page.
    assert 'hx-get="/billing/balance/add-credit"' in client.get("/billing/balance").text
    html = client.get("/billing/balance/add-credit", headers=HTMX).get_data(as_text=True)
    assert "<html" not in html
    assert "Add credit" in html and "Add top up" in html
    assert "£10" in html and "£20" in html
    assert "£50" not in html and "$20" not in html
    assert "Visa ending 4242" in html


def test_balance_page_without_card_points_to_the_cards_page(client, signed_in, products):
    html = client.get("/billing/balance/add-credit").get_data(as_text=True)
    assert "<html" in html  # the panel's own page without HTMX
    assert "add a payment card" in html
    assert "Add top up" not in html


def test_top_up_credits_once_and_updates_the_figures(app, client, db, signed_in, products):
    add_test_card(app, signed_in.account_id)
    request_key = key()
    response = top_up(client, products["£20"], request_key)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "£20.00 added to your balance" in html
    assert 'id="balance-summary"' in html and 'hx-swap-oob="true"' in html
    assert "£20.00" in html
    assert money_state(db, signed_in.account_id) == (2000, 1)
    payment = db.query(Payment).one()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.stripe_payment_intent_id.startswith("pi_")
    assert payment.stripe_charge_id.startswith("ch_")
    entry = db.query(LedgerEntry).one()
    assert (entry.kind, entry.amount_minor, entry.idempotency_key) == (
        EntryKind.TOPUP,
        2000,
        f"payment:{payment.id}",
    )
    # The same form submitted again (double click, retry) charges nothing more.
    top_up(client, products["£20"], request_key)
    assert money_state(db, signed_in.account_id) == (2000, 1)
    assert db.query(Payment).count() == 1
    # A new form is a new top-up.
    top_up(client, products["£10"])
    assert money_state(db, signed_in.account_id) == (3000, 2)


def test_top_up_without_htmx_redirects_with_a_message(app, client, db, signed_in, products):
    add_test_card(app, signed_in.account_id)
    response = top_up(client, products["£10"], htmx=False)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "£10.00 added to your balance" in page
    assert money_state(db, signed_in.account_id) == (1000, 1)


def test_declined_card_gives_a_clear_message_and_no_credit(app, client, db, signed_in, products):
    add_test_card(app, signed_in.account_id, "4000000000000341")
    html = top_up(client, products["£20"]).get_data(as_text=True)
    assert "Your card was declined" in html
    assert "alert-error" in html
    assert money_state(db, signed_in.account_id) == (0, 0)
    payment = db.query(Payment).one()
    assert payment.status == PaymentStatus.FAILED
    assert "declined" in payment.failure_message
    assert payment.stripe_charge_id.startswith("ch_")
    assert payment.stripe_payment_intent_id.startswith("pi_")


def test_card_needing_authentication_is_not_credited(app, client, db, signed_in, products):
    add_test_card(app, signed_in.account_id, "4000002500003155")
    html = top_up(client, products["£10"]).get_data(as_text=True)
    # On-session: Stripe.js finishes it in the page (tests/browser/test_three_d_secure.py).
    assert "asks you to confirm the payment of" in html
    assert "Confirm payment with your bank" in html and 'data-client-secret="pi_' in html
    assert money_state(db, signed_in.account_id) == (0, 0)
    payment = db.query(Payment).one()
    assert (payment.status, payment.needs_authentication) == (PaymentStatus.REQUIRES_ACTION, True)


def test_top_up_without_a_primary_card_is_refused(client, db, signed_in, products):
    html = top_up(client, products["£10"]).get_data(as_text=True)
    assert "Add a payment card and make it primary" in html
    assert money_state(db, signed_in.account_id) == (0, 0)
    assert db.query(Payment).count() == 0


@pytest.mark.parametrize(
    "product",
    ["£50", "$20", "999999", "-1", "0", "abc", "NaN", "1e3", "", "99999999999999999999999"],
)
def test_bad_product_choices_are_refused(app, client, db, signed_in, products, product):
    add_test_card(app, signed_in.account_id)
    product_id = products.get(product, product)
    response = top_up(client, product_id)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Choose" in html and "top-up amount" in html
    assert money_state(db, signed_in.account_id) == (0, 0)
    assert db.query(Payment).count() == 0


@pytest.mark.parametrize("bad_key", ["", "abc", "X" * 32, "1" * 200])
def test_missing_or_bad_request_key_is_refused(app, client, db, signed_in, products, bad_key):
    add_test_card(app, signed_in.account_id)
    response = client.post(
        "/billing/balance/topup",
        data={"product_id": str(products["£10"]), "idempotency_key": bad_key},
        headers=HTMX,
    )
    assert "Reload the page and try again" in response.get_data(as_text=True)
    assert db.query(Payment).count() == 0


def test_stripe_down_leaves_a_pending_payment_and_no_credit(app, client, db, signed_in, products):
    account = db.get(Account, signed_in.account_id)
    account.stripe_customer_id = "cus_unreachable"
    db.add(
        PaymentCard(
            account_id=account.id,
            stripe_payment_method_id="pm_unreachable",
            brand="visa",
            last4="4242",
            exp_month=1,
            exp_year=2040,
            role="primary",
        )
    )
    db.commit()
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    app.extensions.pop("stripe_client", None)
    html = top_up(client, products["£10"]).get_data(as_text=True)
    assert "did not confirm the payment yet" in html
    assert money_state(db, account.id) == (0, 0)
    assert db.query(Payment).one().status == PaymentStatus.PENDING


def _pending_payment(app, account_id: int, card_id: int, amount: int = 1500) -> int:
    """What charge_card commits before it calls Stripe."""
    with app.app_context():
        session = portal_db.session()
        payment = Payment(
            account_id=account_id,
            card_id=card_id,
            purpose=PaymentPurpose.TOPUP,
            amount_minor=amount,
            currency="GBP",
            idempotency_key=key(),
            created_at=utcnow() - timedelta(hours=1),
        )
        session.add(payment)
        session.commit()
        return payment.id


def test_reconcile_credits_a_pending_payment_that_succeeded_in_stripe(app, db, signed_in):
    card_id = add_test_card(app, signed_in.account_id)
    payment_id = _pending_payment(app, signed_in.account_id, card_id)
    with app.app_context():
        session = portal_db.session()
        payment = session.get(Payment, payment_id)
        card = session.get(PaymentCard, card_id)
        result = gateway.charge_off_session(
            customer_id=session.get(Account, signed_in.account_id).stripe_customer_id,
            payment_method_id=card.stripe_payment_method_id,
            amount_minor=1500,
            currency="GBP",
            idempotency_key=payment.idempotency_key,
            metadata={"payment_id": str(payment_id)},
        )
        payment.stripe_payment_intent_id = result.payment_intent_id
        session.commit()
        assert service.reconcile_pending_payments(session, older_than=timedelta(minutes=10)) == 1
        assert service.reconcile_pending_payments(session, older_than=timedelta(minutes=10)) == 0
    assert money_state(db, signed_in.account_id) == (1500, 1)
    assert db.get(Payment, payment_id).status == PaymentStatus.SUCCEEDED


def test_reconcile_replays_a_charge_that_never_answered(app, db, signed_in):
    card_id = add_test_card(app, signed_in.account_id)
    young = _pending_payment(app, signed_in.account_id, card_id)
    with app.app_context():
        session = portal_db.session()
        recent = Payment(
            account_id=signed_in.account_id,
            card_id=card_id,
            purpose=PaymentPurpose.TOPUP,
            amount_minor=700,
            currency="GBP",
            idempotency_key=key(),
        )
        session.add(recent)
        session.commit()
        assert service.reconcile_pending_payments(session, older_than=timedelta(minutes=10)) == 1
    assert money_state(db, signed_in.account_id) == (1500, 1)
    assert re.match(r"^pi_", db.get(Payment, young).stripe_payment_intent_id)
    assert db.query(Payment).filter_by(status=PaymentStatus.PENDING).count() == 1  # the recent one


def test_charge_card_refuses_a_mismatched_entry_kind_and_bad_amounts(app, db, signed_in):
    card_id = add_test_card(app, signed_in.account_id)
    with app.app_context():
        session = portal_db.session()
        account = session.get(Account, signed_in.account_id)
        card = session.get(PaymentCard, card_id)
        with pytest.raises(ValueError, match="credited as"):
            service.charge_card(
                session,
                account=account,
                card=card,
                amount_minor=100,
                purpose=PaymentPurpose.TOPUP,
                entry_kind=EntryKind.AUTO_RECHARGE,
                idempotency_key=key(),
            )
        for amount in (0, -100):
            with pytest.raises(service.ValidationFailed):
                service.charge_card(
                    session,
                    account=account,
                    card=card,
                    amount_minor=amount,
                    purpose=PaymentPurpose.AUTO_RECHARGE,
                    idempotency_key=key(),
                )
    assert db.query(Payment).count() == 0
