"""A person signs in with the demo accounts and sees the navigation of their role."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import sign_in


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_customer_signs_in_and_sees_billing_navigation(page: Page, server):
    sign_in(page, server.url, "alice@example.com")
    expect(page).to_have_url(re.compile(r"/billing/balance$"))
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Account balance")).to_be_visible()
    expect(page.get_by_role("heading", name="Account balance")).to_be_visible()
    expect(nav.get_by_role("link", name="Customers")).to_have_count(0)
    expect(page.locator("#toasts")).to_contain_text("Signed in as alice@example.com")


def test_history_older_button_loads_more_rows_by_htmx(page: Page, server):
    sign_in(page, server.url, "alice@example.com")
    rows = page.locator("#history-rows tr:not(#older-row)")
    expect(rows).to_have_count(25)
    page.get_by_role("button", name="Older").click()
    expect(rows).to_have_count(50)


def test_reseller_admin_sees_admin_navigation_and_signs_out(page: Page, server):
    sign_in(page, server.url, "admin@acme.example")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Customers")).to_be_visible()
    expect(nav.get_by_role("link", name="Account balance")).to_have_count(0)
    expect(page.get_by_text("Reseller admin of Acme Telecom")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_operator_sees_operator_pages(page: Page, server):
    sign_in(page, server.url, "operator@example.com")
    expect(page.get_by_text("Operator: you see every reseller.")).to_be_visible()
