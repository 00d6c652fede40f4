"""A reseller admin runs the seed's three billing stages for Erin, a new customer whose billing
run has not happened: Review Billing Details, Generate the Invoice, Send out the Invoice; then
the due accounts in one batch. (The demo's own accounts are invoiced up to date.)"""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.models import Account, BillingModel, Plan, Reseller, Subscription, utcnow
from portal.plans import billing_period
from tests.browser.test_navigation import sign_in


@pytest.fixture
def server(demo, live_server, db):
    """Erin (Acme, postpaid, Professional) subscribed a period ago, never billed: 2 periods due."""
    acme = db.scalar(select(Reseller).where(Reseller.name == "Acme Telecom"))
    erin = Account(
        reseller_id=acme.id,
        number="100009",
        name="Erin Example",
        email="erin@example.com",
        currency="GBP",
        billing_model=BillingModel.POSTPAID,
        credit_limit_minor=20000,
    )
    db.add(erin)
    db.flush()
    today = utcnow().date()
    current = billing_period(today.day, today)
    previous = billing_period(today.day, current.start - timedelta(days=1))
    plan = db.scalar(select(Plan).where(Plan.name == "Professional"))
    db.add(
        Subscription(
            account_id=erin.id, plan_id=plan.id, anchor_day=today.day, started_on=previous.start
        )
    )
    db.commit()
    return live_server


def test_review_generate_and_send_erins_invoice(page: Page, server):
    sign_in(page, server.url, "admin@acme.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    due = page.locator("#due-accounts")
    expect(due).to_contain_text("Erin Example")
    expect(due).not_to_contain_text("Bob Example")  # invoiced up to date
    expect(due).not_to_contain_text("Carol Example")  # Beta Voice's customer
    expect(due.locator("tfoot")).to_contain_text("Grand total (GBP)")

    # Review Billing Details
    due.get_by_role("link", name="Erin Example").click()
    expect(page.get_by_role("heading", name="Review Billing Details")).to_be_visible()
    expect(page.locator("#review-lines")).to_contain_text("Professional plan")
    expect(page.locator("#review-total")).to_have_text("£25.00")
    expect(page.get_by_text("2 periods are due")).to_be_visible()

    # Generate the Invoice: a draft, not sent yet
    page.get_by_role("button", name="Generate the Invoice").click()
    expect(page).to_have_url(re.compile(r"/admin/billing/invoices/\d+$"))
    expect(page.locator("#toasts")).to_contain_text("Generated INV-")
    expect(page.locator("#invoice-status")).to_have_text("Draft")
    expect(page.locator("#invoice-sent")).to_have_text("Not sent yet")
    number = page.get_by_role("heading", level=1).inner_text().removeprefix("Invoice ")

    # Send out the Invoice (HTMX swaps the panel)
    page.get_by_role("button", name="Send out the Invoice").click()
    expect(page.get_by_role("status").filter(has_text="sent to erin@example.com")).to_be_visible()
    expect(page.locator("#invoice-status")).to_have_text("Open")
    expect(page.get_by_role("button", name="Resend the invoice")).to_be_visible()

    # The email waits in the outbox.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.locator("#outbox")).to_contain_text(f"Invoice {number}")


def test_batch_generate_then_send_all_unsent(page: Page, server):
    sign_in(page, server.url, "admin@acme.example")
    page.goto(f"{server.url}/admin/billing")
    page.get_by_role("button", name="Generate the Invoice for every due account").click()
    result = page.locator("#generate-result")
    expect(result).to_contain_text("1 account processed: 1 invoiced, 0 failed.")
    expect(page.locator("#due")).to_contain_text("No account is due")
    page.get_by_role("button", name="Send all unsent").click()
    expect(page.locator("#send-result")).to_contain_text("2 invoices sent.")
    expect(page.locator("#send")).to_contain_text("Every generated invoice has been sent.")

    # The invoice list: no drafts left; the CSV link keeps the filter.
    page.goto(f"{server.url}/admin/billing/invoices")
    page.get_by_label("Status").select_option("draft")
    page.get_by_role("button", name="Filter invoices").click()
    expect(page).to_have_url(re.compile(r"status=draft"))
    expect(page.locator("#invoice-list")).to_contain_text("No invoices match.")
    expect(page.get_by_role("link", name="Download CSV of these invoices")).to_have_attribute(
        "href", re.compile(r"invoices\.csv\?.*status=draft")
    )
