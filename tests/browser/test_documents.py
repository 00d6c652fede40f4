"""Alice tops up, opens the receipt from her history and downloads it and an invoice as PDF;
her reseller's admin previews the receipt email in the outbox."""

import io
import re

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader
from sqlalchemy import select

from portal.models import Account
from tests.browser.test_navigation import sign_in
from tests.documents.test_documents import make_invoice


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def seeded(app, demo, live_server):
    """The demo with Alice's and Bob's cards in localstripe."""
    from portal.devserver import seed_stripe_demo

    seed_stripe_demo(app)
    return live_server


def downloaded_pdf_text(page: Page, link) -> tuple[str, str]:
    with page.expect_download() as info:
        link.click()
    download = info.value
    with open(download.path(), "rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    return download.suggested_filename, text


def test_alice_opens_her_receipt_from_the_history_and_downloads_pdfs(page: Page, seeded, db):
    alice = db.scalar(select(Account).where(Account.email == "alice@example.com"))
    invoice = make_invoice(db, alice, number=41)
    db.commit()
    console = []
    page.on("console", lambda message: console.append(message.text))
    sign_in(page, seeded.url, "alice@example.com")
    expect(page).to_have_url(re.compile(r"/billing/balance$"))

    page.get_by_label("£20").check()
    page.get_by_role("button", name="Add top up").click()
    expect(page.locator("#toasts")).to_contain_text("£20.00 added to your balance")
    first_row = page.locator("#history-rows tr").first
    expect(first_row).to_contain_text("Top-up by card")
    first_row.get_by_role("link", name=re.compile(r"^Receipt RCP-\d+-\d{6}$")).click()

    expect(
        page.get_by_role("heading", name=re.compile(r"^Receipt RCP-\d+-\d{6}$"))
    ).to_be_visible()
    expect(page.locator(".document-lines")).to_contain_text("Top-up by card")
    expect(page.locator(".document-due")).to_contain_text("£0.00")
    name, text = downloaded_pdf_text(page, page.get_by_role("link", name="Download receipt (PDF)"))
    assert re.fullmatch(r"RCP-\d+-\d{6}\.pdf", name)
    assert "Total £20.00" in text and "Paid £20.00" in text and "Alice" in text

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    number = f"INV-{invoice.reseller_id}-000041"
    name, text = downloaded_pdf_text(
        page, page.get_by_role("link", name=f"Download {number} (PDF)")
    )
    assert name == f"{number}.pdf"
    assert "Total £57.40" in text and "Tax at 20.00% (included) £9.57" in text
    assert not [line for line in console if "Content Security Policy" in line]


def test_admin_previews_the_receipt_email_in_the_outbox(page: Page, seeded, db):
    console = []
    page.on("console", lambda message: console.append(message.text))
    sign_in(page, seeded.url, "alice@example.com")
    page.get_by_label("£20").check()
    page.get_by_role("button", name="Add top up").click()
    expect(page.locator("#toasts")).to_contain_text("£20.00 added to your balance")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, seeded.url, "admin@acme.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    row = page.locator("#outbox tbody tr", has_text="£20.00 received")
    expect(row).to_contain_text("Queued")
    row.get_by_role("link", name=re.compile(r"Receipt RCP-")).click()
    expect(page.locator("pre.mail-body")).to_contain_text("Thank you: we received £20.00")
    frame = page.frame_locator("iframe.mail-html")
    expect(frame.get_by_text("Receipt RCP-", exact=False).first).to_be_visible()
    expect(frame.locator("strong", has_text="£20.00")).to_be_visible()
    expect(page.get_by_text(re.compile(r"RCP-\d+-\d{6}\.pdf"))).to_be_visible()
    assert not [line for line in console if "Content Security Policy" in line]
