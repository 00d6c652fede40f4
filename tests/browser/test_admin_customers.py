"""A reseller admin finds Bob (postpaid) and uses his Balance & Credits tab."""

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from portal.models import utcnow
from portal.money import format_money, parse_amount
from tests.browser.helpers import sign_in


@pytest.fixture
def server(demo, live_server):
    return live_server


def gbp(minor: int) -> str:
    return format_money(minor, "GBP")


def open_bobs_balance_tab(page: Page, base: str) -> int:
    """Bob's Balance & Credits tab; returns his balance (his demo invoices left him owing)."""
    sign_in(page, base, "admin@acme.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_label("Search").fill("Bob")
    # HTMX swaps the results while typing; Alice disappears.
    expect(page.get_by_role("cell", name="Alice Example")).to_have_count(0)
    expect(page).to_have_url(f"{base}/admin/customers?q=Bob")
    page.get_by_role("link", name="100002").click()
    page.get_by_role("link", name="Balance & Credits").click()
    expect(page.locator("#maximum-prompt")).to_contain_text("Maximum possible increase: £100.00")
    shown = page.locator("#balance-value").inner_text().replace("£", "").replace(",", "")
    balance = parse_amount(shown.strip(), "GBP", allow_negative=True, allow_zero=True)
    expect(page.locator("#available-value")).to_have_text(gbp(balance + 20000))
    return balance


def test_temporary_increase_raises_available_funds(page: Page, server):
    balance = open_bobs_balance_tab(page, server.url)
    valid_until = (utcnow() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("Temporary Credit Limit Increase").fill("25%")
    page.get_by_label("Valid Until").fill(valid_until)
    page.get_by_role("button", name="Set temporary increase").click()
    expect(page.locator("#available-value")).to_have_text(gbp(balance + 25000))
    expect(page.locator("#toasts")).to_contain_text("Temporary Credit Limit Increase saved.")
    expect(page.locator("#credit-history")).to_contain_text("£250.00 (+25%)")
    # Above the maximum: refused inline with the prompt, nothing changes.
    page.get_by_label("Temporary Credit Limit Increase").fill("150.00")
    page.get_by_label("Valid Until").fill(valid_until)
    page.get_by_role("button", name="Set temporary increase").click()
    expect(page.get_by_text("The increase is above the maximum.")).to_be_visible()
    expect(page.locator("#available-value")).to_have_text(gbp(balance + 25000))


def test_manual_payment_changes_the_balance(page: Page, server):
    balance = open_bobs_balance_tab(page, server.url)
    page.locator("#amount").fill("12.50")
    page.get_by_label("Order number").fill("ORD-42")
    page.get_by_label("Reason", exact=True).fill("Bank transfer")
    page.get_by_role("button", name="Record payment or adjustment").click()
    expect(page.locator("#balance-value")).to_have_text(gbp(balance + 1250))
    expect(page.locator("#available-value")).to_have_text(gbp(balance + 21250))
    expect(page.locator("#toasts")).to_contain_text("Payment recorded.")
    # Reloading shows the same state: it was stored, once.
    page.reload()
    expect(page.locator("#balance-value")).to_have_text(gbp(balance + 1250))
