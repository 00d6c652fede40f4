"""Alice links a card through the Stripe.js form (localstripe's) and tops up 20 GBP."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def server(demo, live_server):
    return live_server


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("demo-pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/billing/balance$"))


def pounds(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def test_alice_adds_a_card_and_tops_up_20_gbp(page: Page, server):
    console = []
    page.on("console", lambda message: console.append(message.text))
    sign_in(page, server.url, "alice@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Payment cards").click()
    expect(page.get_by_text("No cards yet")).to_be_visible()

    page.get_by_role("button", name="Add card").click()
    form = page.locator("#card-form")
    # localstripe's fake Card Element: plain inputs inside our form, sent to Stripe only.
    form.get_by_placeholder("number").fill("4242424242424242")
    form.get_by_placeholder("exp_month").fill("12")
    form.get_by_placeholder("exp_year").fill("34")
    form.get_by_placeholder("cvc").fill("123")
    form.get_by_placeholder("postal_code").fill("12345")
    page.get_by_role("button", name="Save card").click()

    expect(page.locator("#toasts")).to_contain_text("Credit card successfully linked")
    row = page.locator("#cards tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Visa ending 4242")
    expect(row).to_contain_text("Primary")
    expect(page.locator("#card-form")).to_have_count(0)

    page.get_by_role("link", name="Account balance").click()
    before = pounds(page.locator("#balance-value").inner_text())
    page.get_by_label("£20").check()
    page.get_by_role("button", name="Add top up").click()
    expect(page.locator("#toasts")).to_contain_text("£20.00 added to your balance")
    expect(page.locator("#balance-value")).not_to_have_text(f"£{before:,.2f}")
    assert pounds(page.locator("#balance-value").inner_text()) == before + 20
    expect(page.locator("#history-rows tr").first).to_contain_text("Top-up by card")
    assert not [text for text in console if "Content Security Policy" in text]


def test_a_declined_setup_shows_stripes_message(page: Page, server):
    sign_in(page, server.url, "alice@example.com")
    page.goto(f"{server.url}/billing/cards")
    page.get_by_role("button", name="Add card").click()
    form = page.locator("#card-form")
    form.get_by_placeholder("number").fill("4000000000000002")
    form.get_by_placeholder("exp_month").fill("12")
    form.get_by_placeholder("exp_year").fill("34")
    form.get_by_placeholder("cvc").fill("123")
    page.get_by_role("button", name="Save card").click()
    expect(form.locator("[data-card-errors]")).not_to_be_empty()
    expect(page.get_by_text("No cards yet")).to_be_visible()


@pytest.fixture
def seeded(app, server):
    """Alice and Bob with the demo's Stripe customers and cards."""
    from portal.devserver import seed_stripe_demo

    seed_stripe_demo(app)
    return server


def test_alice_swaps_card_roles_and_deletes_the_primary(page: Page, seeded):
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, seeded.url, "alice@example.com")
    page.goto(f"{seeded.url}/billing/cards")
    rows = page.locator("#cards tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Primary")
    rows.nth(1).get_by_role("button", name="Make primary").click()
    expect(page.locator("#toasts")).to_contain_text("is now your primary card")
    expect(rows.nth(0)).to_contain_text("ending 4444")
    expect(rows.nth(1)).to_contain_text("Secondary")
    rows.nth(0).get_by_role("button", name="Delete").click()
    expect(page.locator("#toasts")).to_contain_text("Card deleted")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("ending 4242")
    expect(rows.nth(0)).to_contain_text("Primary")


def test_bob_turns_on_automatic_top_up(page: Page, seeded):
    sign_in(page, seeded.url, "bob@example.com")
    page.get_by_role("link", name="Top-up settings").click()
    page.get_by_label("Automatic top-up").check()
    page.get_by_label("My balance hit the threshold of").fill("10.00")
    page.get_by_label("Top up the following amount").fill("2.00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Enter an amount from £5.00 to £1,000.00.")).to_be_visible()
    page.get_by_label("Top up the following amount").fill("30.00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Automatic top-up is on")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Automatic top-up")).to_be_checked()
    expect(page.get_by_label("Top up the following amount")).to_have_value("30.00")
