"""Admin top-up cards and card codes in a real browser (demo data, Acme's reseller admin)."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import sign_in


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_generate_search_mass_edit_and_reveal(page: Page, server):
    sign_in(page, server.url, "admin@acme.example")
    page.goto(f"{server.url}/admin/topup-cards")
    expect(page.get_by_role("heading", name="Top-up cards")).to_be_visible()

    page.get_by_role("button", name="Generate Top-Up Cards").click()
    dialog = page.locator("#generate-dialog")
    dialog.get_by_label("Amount").fill("5.00")
    dialog.get_by_label("Quantity").fill("3")
    dialog.get_by_label("Series").fill("BRW")
    dialog.get_by_label("PIN Length").fill("8")
    dialog.get_by_label("Expiration date").fill("2030-01-01T10:00")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_contain_text("Generated 3 top-up cards in series BRW")
    expect(dialog.get_by_role("link", name="Download CSV")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()

    page.get_by_text("Advanced Search").click()
    search = page.locator("#advanced-search")
    search.get_by_label("Series").fill("BRW")
    search.get_by_role("button", name="Search", exact=True).click()
    rows = page.locator("#card-results tbody tr")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(re.compile(r"series=BRW"))
    expect(page.locator("#card-count")).to_have_text("3 cards match the search")

    # With one row ticked the dialog says one card; with none, every card of the search.
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Mass Edit").click()
    mass = page.locator("#mass-edit-dialog")
    expect(mass.locator("#mass-edit-scope")).to_contain_text("This changes the 1 card selected")
    expect(mass.get_by_role("button", name="Delete 1 card")).to_be_visible()
    mass.get_by_role("button", name="Cancel").click()
    rows.first.get_by_role("checkbox").uncheck()
    page.get_by_role("button", name="Mass Edit").click()
    expect(mass.locator("#mass-edit-scope")).to_contain_text("all 3 cards of the current search")
    expect(mass.get_by_role("group", name="Delete cards")).to_contain_text("cannot be undone")
    mass.get_by_role("group", name="Expiration date").get_by_label("set to").check()
    mass.get_by_label("New expiration date").fill("2031-05-06T07:08")
    mass.get_by_role("button", name="Process 3 cards").click()
    expect(page.locator("#card-results")).to_contain_text("3 cards changed.")
    expect(rows).to_have_count(3)
    for i in range(3):
        expect(rows.nth(i)).to_contain_text("06 May 2031 07:08")

    rows.first.get_by_role("button", name=re.compile("Reveal PIN")).click()
    expect(rows.first.locator("code.pin")).to_have_text(re.compile(r"^\d{8}$"))


def test_negative_amount_on_unlimited_card_code_leaves_zero(page: Page, server):
    sign_in(page, server.url, "admin@acme.example")
    page.goto(f"{server.url}/admin/card-codes")
    page.get_by_role("link", name="Manage credit of 48151623").click()
    expect(
        page.get_by_role("heading", name="Credit Management for Card Code 48151623")
    ).to_be_visible()
    expect(page.get_by_text("(currently Unlimited)")).to_be_visible()
    form = page.locator("#add-credit-form")
    form.get_by_label("Add credit").fill("-10")
    form.get_by_label("Order number").fill("BR-1")
    form.get_by_role("button", name="OK").click()
    expect(page.locator("#credit-left")).to_have_text("£0.00")
    row = page.locator("#recharge-history tbody tr", has_text="BR-1")
    expect(row).to_contain_text("-£10.00")
    expect(row.locator("td").nth(2)).to_have_text("£0.00")
    expect(page.get_by_text("(currently 0.00 GBP left)")).to_be_visible()
