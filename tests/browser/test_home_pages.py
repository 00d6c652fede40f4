"""The home pages and the readable audit log in the browser: a customer's /billing, the admin
overview with its charts, the audit log's filters and CSV link (no console error, no axe
violation; at a phone width too)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import sign_in
from tests.browser.test_every_page import axe_violations, page_width_problems, watch_console


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_bob_finds_his_home_with_the_overdue_invoice(page: Page, server):
    console = watch_console(page)
    sign_in(page, server.url, "bob@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Home").click()
    expect(page).to_have_url(re.compile(r"/billing/?$"))
    expect(page.get_by_role("heading", name="Home", exact=True)).to_be_visible()
    expect(page.locator("#home-balance")).to_have_text(re.compile(r"£"))
    expect(page.locator("#home-unpaid")).to_contain_text("overdue")
    expect(page.locator("#latest-rows tr")).to_have_count(5)
    page.get_by_role("link", name="See the full history").click()
    expect(page).to_have_url(re.compile(r"/billing/balance#history$"))
    page.go_back()
    assert page_width_problems(page) == []
    page.set_viewport_size({"width": 1280, "height": 800})
    assert axe_violations(page) == []
    assert console == [], console


def test_admin_overview_charts_and_near_limit_customers(page: Page, server):
    console = watch_console(page)
    sign_in(page, server.url, "admin@acme.example")
    expect(page.get_by_role("heading", name="Admin overview")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"^Card top-ups and automatic"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"^Voucher and top-up card"))).to_be_visible()
    expect(page.locator("#redemptions-total")).not_to_have_text("0")
    expect(page.get_by_role("heading", name="Customers near their credit limits")).to_be_visible()
    assert page_width_problems(page) == []
    page.set_viewport_size({"width": 1280, "height": 800})
    assert axe_violations(page) == []
    assert console == [], console


def test_audit_log_filters_by_htmx_and_offers_the_csv(page: Page, server):
    console = watch_console(page)
    sign_in(page, server.url, "operator@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    page.get_by_label("Who (email, or “system”)").fill("system")
    page.get_by_label("What (action starts with)").fill("payment.")
    page.get_by_role("button", name="Filter audit log").click()
    expect(page).to_have_url(re.compile(r"who=system"))
    table = page.locator("#audit-table")
    expect(table).to_contain_text("Dispute opened")
    expect(table.locator("dt", has_text="Disputed").first).to_be_visible()
    csv_link = page.get_by_role("link", name="Download these entries as CSV")
    expect(csv_link).to_have_attribute("href", re.compile(r"/admin/audit-log\.csv\?.*who=system"))
    assert page_width_problems(page) == []
    page.set_viewport_size({"width": 1280, "height": 800})
    assert axe_violations(page) == []
    assert console == [], console
