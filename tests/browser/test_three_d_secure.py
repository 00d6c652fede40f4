"""3-D Secure in the browser: Alice saves a card whose bank asks for confirmation (the
SetupIntent needs authentication too), then tops up with it; localstripe's Stripe.js shows
its 3-D Secure dialog, she completes it, and the balance is credited once."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.models import Account, Payment, PaymentStatus

NEEDS_3DS = "4000002500003155"


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def server(demo, live_server):
    return live_server


def alices_payments(db):
    alice = db.scalar(select(Account).where(Account.email == "alice@example.com"))
    return db.query(Payment).filter(Payment.account_id == alice.id)


def pounds(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def test_a_card_that_requires_authentication_completes_a_top_up(page: Page, server, db):
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("demo-pass")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Payment cards").click()
    page.get_by_role("button", name="Add card").click()
    form = page.locator("#card-form")
    form.get_by_placeholder("number").fill(NEEDS_3DS)
    form.get_by_placeholder("exp_month").fill("12")
    form.get_by_placeholder("exp_year").fill("34")
    form.get_by_placeholder("cvc").fill("123")
    form.get_by_placeholder("postal_code").fill("12345")
    page.get_by_role("button", name="Save card").click()
    # Card setup needing authentication: localstripe's Stripe.js asks, she confirms.
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator("#toasts")).to_contain_text("Credit card successfully linked")
    expect(page.locator("#cards tbody tr")).to_contain_text("ending 3155")

    page.get_by_role("link", name="Account balance").click()
    before = pounds(page.locator("#balance-value").inner_text())
    page.get_by_label("£20").check()
    page.get_by_role("button", name="Add top up").click()
    expect(page.locator("#add-credit")).to_contain_text("Your bank asks you to confirm")
    expect(page.locator("#balance-value")).to_have_text(re.compile(r".*"))
    assert pounds(page.locator("#balance-value").inner_text()) == before  # nothing yet
    page.get_by_role("button", name="Confirm payment with your bank").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator("#toasts")).to_contain_text("£20.00 added to your balance")
    expect(page.locator("#balance-value")).not_to_have_text(f"£{before:,.2f}")
    assert pounds(page.locator("#balance-value").inner_text()) == before + 20
    db.rollback()
    payment = alices_payments(db).one()  # the demo's other payments are other customers'
    assert payment.status == PaymentStatus.SUCCEEDED and payment.stripe_charge_id
    # Reloading shows the same balance: credited once.
    page.reload()
    assert pounds(page.locator("#balance-value").inner_text()) == before + 20


def test_failing_the_authentication_takes_no_money(page: Page, server, db):
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("demo-pass")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Payment cards").click()
    page.get_by_role("button", name="Add card").click()
    form = page.locator("#card-form")
    form.get_by_placeholder("number").fill(NEEDS_3DS)
    form.get_by_placeholder("exp_month").fill("12")
    form.get_by_placeholder("exp_year").fill("34")
    form.get_by_placeholder("cvc").fill("123")
    form.get_by_placeholder("postal_code").fill("12345")
    page.get_by_role("button", name="Save card").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator("#toasts")).to_contain_text("Credit card successfully linked")
    page.get_by_role("link", name="Account balance").click()
    before = page.locator("#balance-value").inner_text()
    page.get_by_label("£20").check()
    page.get_by_role("button", name="Add top up").click()
    page.get_by_role("button", name="Confirm payment with your bank").click()
    page.get_by_role("button", name="Fail authentication").click()
    expect(page.locator("#toasts")).to_contain_text("No money was taken")
    expect(page.locator("#balance-value")).to_have_text(before)
    db.rollback()
    assert alices_payments(db).one().status == PaymentStatus.FAILED
