"""A reseller admin finds a customer's card payment and refunds part of it in the browser."""

import pytest
from playwright.sync_api import Page, expect

from portal import db as portal_db
from portal.models import Account
from tests.admin.test_payments import paid
from tests.browser.helpers import sign_in


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def alice_payment(app, demo):
    with app.app_context():
        account = portal_db.session().query(Account).filter_by(number="100001").one()
        account_id, opening = account.id, account.balance_minor
    return paid(app, account_id, 2000), opening


def test_admin_refunds_part_of_a_payment(page: Page, live_server, db, alice_payment):
    payment_id, opening = alice_payment
    base = live_server.url
    sign_in(page, base, "admin@acme.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Payments").click()
    page.get_by_label("Search").fill("100001")
    page.get_by_role("button", name="Search payments").click()
    page.get_by_role("link", name=f"Payment {payment_id}").click()
    expect(page.locator("#payment-status")).to_contain_text("Succeeded")
    page.get_by_label("Amount to refund").fill("7.50")
    page.get_by_label("Reason").fill("Goodwill")
    page.get_by_role("button", name="Refund payment").click()
    expect(page.get_by_role("status")).to_contain_text("Refund of £7.50 sent to Stripe.")
    expect(page.locator("#payment-status")).to_contain_text("Partially refunded")
    expect(page.locator("#refunded-value")).to_have_text("£7.50")
    expect(page.locator("#refunds")).to_contain_text("Goodwill")
    # Stored once: a reload shows the same, and the customer's balance went down by £7.50.
    page.reload()
    expect(page.locator("#refunds tbody tr")).to_have_count(1)
    page.goto(f"{base}/admin/payments?q=100001")
    expect(page.locator("#payment-results")).to_contain_text("£7.50")
    db.rollback()
    account = db.query(Account).filter_by(number="100001").one()
    assert account.balance_minor == opening + 2000 - 750
