"""Payment cards: add through a SetupIntent, roles, delete, foreign ids, no card numbers."""

from __future__ import annotations

import re

import pytest

from portal import db as portal_db
from portal.models import Account, AutoRechargeSetting, PaymentCard
from portal.payments import gateway
from tests.builders import make_customer
from tests.payments.conftest import HTMX, add_test_card, card_roles


def start_setup(client) -> tuple[str, str]:
    response = client.post("/billing/cards/setup", headers=HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    secret = re.search(r'data-client-secret="([^"]+)"', html).group(1)
    assert 'data-publishable-key="pk_test_' in html
    return secret.split("_secret_")[0], secret


def confirm_in_stripe(app, setup_intent_id: str, number: str = "4242424242424242") -> None:
    """What Stripe.js does in the browser: the card goes to Stripe, never to us."""
    with app.app_context():
        method = gateway.create_test_card(None, number)
        gateway.confirm_test_setup_intent(setup_intent_id, method.payment_method_id)


def add_card_through_pages(app, client, number: str = "4242424242424242"):
    setup_intent_id, _ = start_setup(client)
    confirm_in_stripe(app, setup_intent_id, number)
    return client.post(
        "/billing/cards/add", data={"setup_intent_id": setup_intent_id}, headers=HTMX
    )


def test_cards_page_lists_nothing_at_first_and_loads_stripe_js(client, signed_in, stripe_config):
    response = client.get("/billing/cards")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "No cards yet" in html
    assert f'<script src="{stripe_config["STRIPE_JS_URL"]}">' in html
    assert "js/cards.js" in html
    origin = stripe_config["STRIPE_API_BASE"]
    assert f"script-src 'self' {origin}" in response.headers["Content-Security-Policy"]


def test_add_card_first_primary_then_secondary_then_other(app, client, db, signed_in):
    response = add_card_through_pages(app, client)
    html = response.get_data(as_text=True)
    assert "Credit card successfully linked" in html
    assert "Visa ending 4242" in html and "Primary" in html
    add_card_through_pages(app, client, "5555555555554444")
    add_card_through_pages(app, client, "4000056655665556")
    assert card_roles(db, signed_in.account_id) == {
        "4242": "primary",
        "4444": "secondary",
        "5556": "other",
    }
    account = db.get(Account, signed_in.account_id)
    assert account.stripe_customer_id.startswith("cus_")
    card = db.query(PaymentCard).filter_by(last4="4444").one()
    assert (card.brand, card.exp_month, card.exp_year) == (
        "visa",
        12,
        2034,
    )  # localstripe: all visa
    with app.app_context():  # attached to our customer in Stripe
        method = gateway.client().v1.payment_methods.retrieve(card.stripe_payment_method_id)
        assert method.customer == account.stripe_customer_id


def test_adding_the_same_setup_intent_twice_keeps_one_card(app, client, db, signed_in):
    setup_intent_id, _ = start_setup(client)
    confirm_in_stripe(app, setup_intent_id)
    for _ in range(2):
        client.post("/billing/cards/add", data={"setup_intent_id": setup_intent_id}, headers=HTMX)
    assert card_roles(db, signed_in.account_id) == {"4242": "primary"}


def test_unconfirmed_or_bogus_setup_intent_adds_no_card(app, client, db, signed_in):
    setup_intent_id, _ = start_setup(client)
    response = client.post(
        "/billing/cards/add", data={"setup_intent_id": setup_intent_id}, headers=HTMX
    )
    assert "The card was not confirmed" in response.get_data(as_text=True)
    for bogus in ["", "seti_doesnotexist", "pm_123", "x" * 200, "seti_<script>"]:
        response = client.post("/billing/cards/add", data={"setup_intent_id": bogus}, headers=HTMX)
        assert response.status_code == 200
        assert "toast-error" in response.get_data(as_text=True)
    assert card_roles(db, signed_in.account_id) == {}


def test_setup_intent_of_another_customer_is_refused(app, client, db, signed_in):
    other = make_customer(db)
    db.commit()
    with app.app_context():
        session = portal_db.session()
        customer_id = gateway.ensure_customer(session, session.get(Account, other.account_id))
        intent = gateway.create_setup_intent(customer_id)
    confirm_in_stripe(app, intent.id)
    start_setup(client)  # our own customer exists
    response = client.post("/billing/cards/add", data={"setup_intent_id": intent.id}, headers=HTMX)
    assert "does not belong to your account" in response.get_data(as_text=True)
    assert db.query(PaymentCard).count() == 0


def test_make_primary_and_secondary_swap_roles(app, client, db, signed_in):
    account_id = signed_in.account_id
    add_test_card(app, account_id)
    second = add_test_card(app, account_id, "5555555555554444")
    third = add_test_card(app, account_id, "4000056655665556")
    response = client.post(f"/billing/cards/{second}/role", data={"role": "primary"}, headers=HTMX)
    assert "is now your primary card" in response.get_data(as_text=True)
    assert card_roles(db, account_id) == {"4444": "primary", "4242": "secondary", "5556": "other"}
    client.post(f"/billing/cards/{third}/role", data={"role": "secondary"}, headers=HTMX)
    assert card_roles(db, account_id) == {"4444": "primary", "5556": "secondary", "4242": "other"}
    client.post(f"/billing/cards/{second}/role", data={"role": "secondary"}, headers=HTMX)
    assert card_roles(db, account_id) == {"5556": "primary", "4444": "secondary", "4242": "other"}
    client.post(f"/billing/cards/{third}/role", data={"role": "primary"})  # without HTMX
    assert card_roles(db, account_id) == {"5556": "primary", "4444": "secondary", "4242": "other"}


def test_a_lone_primary_cannot_become_secondary(app, client, db, signed_in):
    only = add_test_card(app, signed_in.account_id)
    response = client.post(f"/billing/cards/{only}/role", data={"role": "secondary"}, headers=HTMX)
    assert "an account needs a primary card" in response.get_data(as_text=True)
    assert card_roles(db, signed_in.account_id) == {"4242": "primary"}


@pytest.mark.parametrize("role", ["other", "", "PRIMARY", "x" * 500])
def test_bad_role_changes_nothing(app, client, db, signed_in, role):
    card = add_test_card(app, signed_in.account_id)
    response = client.post(f"/billing/cards/{card}/role", data={"role": role}, headers=HTMX)
    assert response.status_code == 200
    assert "Choose primary or secondary" in response.get_data(as_text=True)
    assert card_roles(db, signed_in.account_id) == {"4242": "primary"}


def test_delete_primary_promotes_secondary_and_detaches_in_stripe(app, client, db, signed_in):
    account_id = signed_in.account_id
    primary = add_test_card(app, account_id)
    add_test_card(app, account_id, "5555555555554444")
    add_test_card(app, account_id, "4000056655665556")
    pm_id = db.get(PaymentCard, primary).stripe_payment_method_id
    response = client.post(f"/billing/cards/{primary}/delete", headers=HTMX)
    assert "Card deleted" in response.get_data(as_text=True)
    assert card_roles(db, account_id) == {"4444": "primary", "5556": "secondary"}
    with app.app_context():
        assert gateway.client().v1.payment_methods.retrieve(pm_id).customer is None


def test_deleting_the_last_card_turns_automatic_top_up_off(app, client, db, signed_in):
    card = add_test_card(app, signed_in.account_id)
    db.add(AutoRechargeSetting(account_id=signed_in.account_id, enabled=True, amount_minor=1000))
    db.commit()
    client.post(f"/billing/cards/{card}/delete", headers=HTMX)
    db.rollback()
    assert db.get(AutoRechargeSetting, signed_in.account_id).enabled is False
    assert card_roles(db, signed_in.account_id) == {}


def test_foreign_card_ids_answer_404_and_change_nothing(app, client, db, signed_in):
    other = make_customer(db)
    db.commit()
    foreign = add_test_card(app, other.account_id)
    assert (
        client.post(f"/billing/cards/{foreign}/role", data={"role": "primary"}).status_code == 404
    )
    assert client.post(f"/billing/cards/{foreign}/delete").status_code == 404
    assert client.post("/billing/cards/999999/delete").status_code == 404
    assert client.post("/billing/cards/99999999999999999999/delete").status_code == 404
    assert card_roles(db, other.account_id) == {"4242": "primary"}


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/billing/cards/add", {"number": "4242424242424242"}),
        ("/billing/cards/add", {"card_number": "4242 4242 4242 4242", "setup_intent_id": "seti_1"}),
        ("/billing/cards/add", {"cvc": "123", "setup_intent_id": "seti_1"}),
        ("/billing/cards/add", {"card[number]": "4242424242424242"}),
        ("/billing/cards/add", {"setup_intent_id": "4242-4242-4242-4242"}),
        ("/billing/cards/setup", {"cardNumber": "4000000000000341"}),
        ("/billing/balance/topup", {"product_id": "1", "cvv": "123"}),
        ("/billing/topup-settings", {"amount": "5555555555554444"}),
    ],
)
def test_posting_card_data_is_refused(client, db, signed_in, url, data):
    response = client.post(url, data=data, headers=HTMX)
    assert response.status_code == 400
    db.rollback()
    assert db.get(Account, signed_in.account_id).stripe_customer_id is None
    assert db.query(PaymentCard).count() == 0


def test_card_pages_need_a_customer(client):
    assert client.get("/billing/cards").status_code in (302, 401)
    assert client.post("/billing/cards/setup").status_code in (302, 401)


# --- The same card twice: recognised by Stripe's fingerprint ----------------------------------


def test_the_same_card_again_is_recognised_and_not_added(app, client, db, signed_in):
    first = add_card_through_pages(app, client).get_data(as_text=True)
    assert "Credit card successfully linked: Visa ending 4242, expires 12/2034." in first
    again = add_card_through_pages(app, client).get_data(as_text=True)
    assert "This card is already on file: Visa ending 4242, expires 12/2034." in again
    assert "toast-error" not in again and 'id="card-setup" hx-swap-oob="true"' in again
    assert card_roles(db, signed_in.account_id) == {"4242": "primary"}
    cards = db.query(PaymentCard).filter_by(account_id=signed_in.account_id).all()
    assert len(cards) == 1 and cards[0].fingerprint
    with app.app_context():  # the copy is not left on the customer in Stripe
        account = db.get(Account, signed_in.account_id)
        methods = gateway.client().v1.payment_methods.list(
            params={"customer": account.stripe_customer_id, "type": "card"}
        )
        assert [m.id for m in methods.data] == [cards[0].stripe_payment_method_id]


def test_a_different_number_with_the_same_last_4_is_a_new_card(app, client, db, signed_in):
    # Two Visa numbers ending 4242 (both pass the Luhn check): fingerprints differ.
    add_card_through_pages(app, client, "4242424242424242")
    other = add_card_through_pages(app, client, "4111111111174242").get_data(as_text=True)
    assert "Credit card successfully linked" in other
    assert db.query(PaymentCard).filter_by(account_id=signed_in.account_id).count() == 2


def test_another_account_may_hold_the_same_card(app, client, db, signed_in):
    other = make_customer(db)
    db.commit()
    add_test_card(app, other.account_id)
    response = add_card_through_pages(app, client).get_data(as_text=True)
    assert "Credit card successfully linked" in response
    assert db.query(PaymentCard).count() == 2


def test_messages_and_the_list_name_brand_last_4_and_expiry(app, client, db, signed_in):
    add_card_through_pages(app, client)
    add_card_through_pages(app, client, "5555555555554444")
    card = db.query(PaymentCard).filter_by(last4="4444").one()
    made = client.post(f"/billing/cards/{card.id}/role", data={"role": "primary"}, headers=HTMX)
    assert "Visa ending 4444, expires 12/2034 is now your primary card." in made.text
    page = client.get("/billing/cards").text
    assert "12/2034" in page and 'hx-confirm="Delete Visa ending 4444, expires 12/2034?"' in page
    deleted = client.post(f"/billing/cards/{card.id}/delete", headers=HTMX).text
    assert "Card deleted: Visa ending 4444, expires 12/2034." in deleted
