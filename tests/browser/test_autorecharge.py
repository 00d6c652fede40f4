"""Alice turns on automatic top-up; call usage posted through the API drains her balance
below the threshold and the balance page shows the recharge from her card."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal import api_tokens, jobs
from portal.models import Account
from tests.autorecharge.test_autorecharge import add_card


@pytest.fixture
def app_config(stripe_config):
    return {**stripe_config, "AFTER_DEBIT_CHECKS": "thread"}


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_usage_through_the_api_triggers_the_automatic_top_up(page: Page, server, app, db):
    alice = db.scalar(select(Account).where(Account.number == "100001"))
    token = api_tokens.create_token(db, reseller_id=alice.reseller_id, name="switch")
    db.commit()
    add_card(app, alice.id, "4242424242424242")

    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("demo-pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/billing/balance$"))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Top-up settings").click()
    page.get_by_label("Automatic top-up").check()
    page.get_by_label("My balance hit the threshold of").fill("5.00")
    page.get_by_label("Top up the following amount").fill("20.00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Automatic top-up is on.")).to_be_visible()

    client = app.test_client()
    auth = {"Authorization": f"Bearer {token.plaintext}"}
    balance = Decimal(
        client.get("/api/v1/accounts/100001/balance", headers=auth).get_json()["balance"]
    )
    response = client.post(
        "/api/v1/accounts/100001/charges",
        json={
            "amount": str(balance - Decimal("4.00")),
            "description": "Long call",
            "idempotency_key": "drain",
        },
        headers=auth,
    )
    assert response.status_code == 201 and response.get_json()["balance"] == "4.00"
    jobs.wait_for_queued_checks(timeout=30)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account balance").click()
    expect(page.locator("#balance-value")).to_have_text("£24.00")
    expect(page.locator("#history")).to_contain_text("Automatic top-up")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Top-up settings").click()
    expect(page.locator("#topup-settings")).to_contain_text("Succeeded")
