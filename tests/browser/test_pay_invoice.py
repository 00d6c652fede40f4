"""Bob (postpaid) pays his overdue invoice with Pay now, from the invoices page."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.models import Account
from tests.browser.test_cards_topup import sign_in
from tests.payments.conftest import add_test_card


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_bob_pays_his_overdue_invoice_with_pay_now(page: Page, server, app, db):
    bob = db.scalar(select(Account).where(Account.number == "100002"))
    add_test_card(app, bob.id)
    console = []
    page.on("console", lambda message: console.append(message.text))
    sign_in(page, server.url, "bob@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    overdue = page.locator("#invoices tbody tr", has_text="Overdue")
    expect(overdue).to_have_count(1)
    overdue.get_by_role("link", name=re.compile(r"^INV-")).click()
    expect(page.get_by_role("heading", name="Pay now")).to_be_visible()
    due = page.get_by_label("Amount to pay").input_value()
    assert re.fullmatch(r"\d+\.\d\d", due)
    page.get_by_role("button", name="Pay now").click()
    expect(page.get_by_text(f"£{due} paid with Visa •••• 4242")).to_be_visible()
    expect(page.locator(".document-head .badge")).to_have_text("Paid")
    expect(page.get_by_role("heading", name="Pay now")).to_have_count(0)
    page.get_by_role("link", name="Back to invoices").click()
    expect(page.locator("#invoices tbody tr", has_text="Overdue")).to_have_count(0)
    assert not [text for text in console if "Content Security Policy" in text]


def test_bob_confirms_pay_now_with_his_bank_when_it_asks(page: Page, server, app, db):
    """A card whose bank wants 3-D Secure: the confirmation page, localstripe's dialog, then
    back on the invoice, paid once."""
    bob = db.scalar(select(Account).where(Account.number == "100002"))
    add_test_card(app, bob.id, "4000002500003155")
    console = []
    page.on("console", lambda message: console.append(message.text))
    sign_in(page, server.url, "bob@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    page.locator("#invoices tbody tr", has_text="Overdue").get_by_role(
        "link", name=re.compile(r"^INV-")
    ).click()
    due = page.get_by_label("Amount to pay").input_value()
    page.get_by_role("button", name="Pay now").click()
    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    expect(page.get_by_text("Your bank asks you to confirm")).to_contain_text(f"£{due}")
    page.get_by_role("button", name="Confirm payment with your bank").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_text(f"£{due} paid with Visa •••• 3155")).to_be_visible()
    expect(page.locator(".document-head .badge")).to_have_text("Paid")
    assert not [text for text in console if "Content Security Policy" in text]
