"""Secrets stay secret: PINs, API tokens and passwords never reach the logs, error pages or
HTML, except where shown on purpose (a revealed PIN to its admin, a new token once).

Card data: tests/payments/test_cards.py::test_posting_card_data_is_refused (our server
refuses card numbers and CVCs; cards go to Stripe.js only).
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from portal.models import Account, ApiToken, Role, TopupCard
from tests.billing.plan_helpers import make_card
from tests.builders import make_account, make_reseller, make_user

PASSWORD = "Correct-Horse-7731"
WRONG_PASSWORD = "Wrong-Battery-9902"
PIN = "5550004242"
WRONG_PIN = "5550009999"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def world(app, db):
    from werkzeug.security import generate_password_hash

    reseller = make_reseller(db)
    account = make_account(db, reseller=reseller, number="930001")
    customer = make_user(db, account=account, email="secret@t.test")
    customer.password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller, email="sa@t.test")
    admin.password_hash = customer.password_hash
    card = make_card(db, reseller_id=reseller.id, pin=PIN)
    spare = make_card(db, reseller_id=reseller.id, pin="5550001111")
    db.commit()
    return {"account": account, "card": card.id, "spare": spare.id}


def sign_in(client, email, password=PASSWORD):
    return client.post("/login", data={"email": email, "password": password})


def test_secrets_never_reach_the_logs_or_pages(app, db, world, caplog):
    caplog.set_level(logging.DEBUG)
    pages: list[str] = []
    customer = app.test_client()
    # Sign-in: a wrong password, then the right one.
    pages.append(sign_in(customer, "secret@t.test", WRONG_PASSWORD).get_data(as_text=True))
    assert sign_in(customer, "secret@t.test").status_code == 302
    # Redemption: a wrong PIN, then the right one.
    for pin in (WRONG_PIN, PIN):
        response = customer.post("/billing/redeem", data={"pin": pin}, headers=HTMX)
        pages.append(response.get_data(as_text=True))
    pages.append(customer.get("/billing/balance").get_data(as_text=True))
    # An admin creates an API token (shown once, on purpose) and reveals a PIN (on purpose).
    admin = app.test_client()
    sign_in(admin, "sa@t.test")
    created = admin.post("/admin/api-tokens", data={"name": "switch"}).get_data(as_text=True)
    start = created.index('value="vbp_') + len('value="')
    token = created[start : created.index('"', start)]
    revealed = admin.post(f"/admin/topup-cards/{world['spare']}/reveal", headers=HTMX)
    assert "5550001111" in revealed.get_data(as_text=True)
    pages.append(admin.get("/admin/api-tokens").get_data(as_text=True))
    pages.append(admin.get("/admin/topup-cards").get_data(as_text=True))
    pages.append(admin.get("/admin/audit-log").get_data(as_text=True))
    # The token in use, a wrong one, and an error page.
    api = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    pages.append(api.get("/api/v1/accounts/930001/balance", headers=auth).get_data(as_text=True))
    bad = {"Authorization": f"Bearer {token}x"}
    pages.append(api.get("/api/v1/accounts/930001/balance", headers=bad).get_data(as_text=True))
    pages.append(
        api.post("/api/v1/accounts/930001/charges", data="{", headers=auth).get_data(as_text=True)
    )

    logs = caplog.text
    for secret in (PASSWORD, WRONG_PASSWORD, PIN, WRONG_PIN, token, "5550001111"):
        assert secret not in logs, f"{secret!r} logged"
    for page in pages:
        for secret in (PASSWORD, WRONG_PASSWORD, PIN, token):
            assert secret not in page
    # A revealed PIN stays out of every listing and the audit log.
    for page in pages[-5:-3] + pages[-3:]:
        assert "5550001111" not in page
    db.rollback()
    stored = db.scalar(select(ApiToken))
    assert token not in (stored.token_hash, stored.prefix)
    card = db.get(TopupCard, world["card"])
    assert PIN not in card.pin_hash and PIN.encode() not in card.pin_encrypted
    assert db.get(Account, world["account"].id).balance_minor == 2000


def test_a_refused_pin_is_not_written_back_into_the_page(app, world):
    client = app.test_client()
    sign_in(client, "secret@t.test")
    for headers in ({}, {"HX-Request": "true"}):
        page = client.post("/billing/redeem", data={"pin": "9876501234"}, headers=headers)
        html = page.get_data(as_text=True)
        assert "9876501234" not in html
        assert 'name="pin"' in html  # the form is still there, with its message


def test_a_redeemed_pin_is_not_shown_again(app, db, world):
    # A PIN that was redeemed is never shown again, in the answer or on any later page.
    client = app.test_client()
    sign_in(client, "secret@t.test")
    page = client.post("/billing/redeem", data={"pin": PIN}, follow_redirects=True)
    assert "£20.00 added" in page.get_data(as_text=True)
    assert PIN not in page.get_data(as_text=True)
    assert PIN not in client.get("/billing/balance").get_data(as_text=True)
    assert PIN not in client.get("/billing/redeem").get_data(as_text=True)


def test_the_password_field_is_never_filled_in(app, world):
    client = app.test_client()
    html = sign_in(client, "secret@t.test", WRONG_PASSWORD).get_data(as_text=True)
    assert WRONG_PASSWORD not in html
    assert 'type="password"' in html
