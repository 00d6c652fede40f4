"""Alice redeems a demo voucher, changes plan down and finds the reserve credit."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.demo import DEMO_PINS


@pytest.fixture
def server(demo, live_server):
    return live_server


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("demo-pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/billing/balance$"))


def test_alice_redeems_a_demo_pin_and_sees_the_amount_added(page: Page, server):
    sign_in(page, server.url, "alice@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Redeem voucher").click()
    expect(page.get_by_role("heading", name="Redeem voucher")).to_be_visible()
    before = page.locator("#redeem-balance").inner_text()
    page.get_by_label("PIN").fill(DEMO_PINS["Acme Telecom"][0])
    page.get_by_role("button", name="Redeem").click()
    result = page.locator("#redeem-result")
    expect(result).to_contain_text("£20.00 added.")
    expect(page.locator("#redeem-balance")).not_to_have_text(before)
    expect(page.locator("#toasts")).to_contain_text("£20.00 added to your balance")
    # the same PIN again is refused with the generic message
    page.get_by_label("PIN").fill(DEMO_PINS["Acme Telecom"][0])
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_text("This PIN cannot be redeemed.")).to_be_visible()


def test_alice_changes_plan_down_and_sees_reserve_credit(page: Page, server):
    sign_in(page, server.url, "alice@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Change plan").click()
    expect(page.locator(".plan.current")).to_contain_text("Complete")
    page.get_by_role("button", name="Choose Professional").click()
    preview = page.locator("#plan-preview")
    expect(preview).to_contain_text("Reserve credit granted")
    expect(preview).to_contain_text(re.compile(r"\d+ of \d+ days left"))
    page.get_by_role("button", name="Change plan").click()
    expect(page.locator(".alert-success")).to_contain_text("You are now on Professional.")
    expect(page.locator(".plan.current")).to_contain_text("Professional")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reserve credit").click()
    table = page.locator("#reserve-table")
    expect(table).to_contain_text("Downgrade from Complete to Professional")
    # The demo gives Alice reserve credit of her own too: look at the new grant's row.
    row = table.locator("tbody tr", has_text="Downgrade from Complete to Professional")
    expect(row.locator(".badge")).to_have_text("Active")
    row.get_by_role("button", name="Details").click()
    expect(page.get_by_text("Not used yet.")).to_be_visible()
    expect(page.locator(".grant-details:not([hidden])")).to_contain_text("left; expires on")
