"""Invoice and receipt documents: the page and the PDF show the same figures; ledger CSV."""

from __future__ import annotations

import csv
import http.server
import io
import re
import threading
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from portal import documents
from portal.ledger import audit_balances, post_entry
from portal.models import (
    EntryKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LedgerEntry,
    PaymentAllocation,
)
from tests.builders import login, make_customer, make_reseller
from tests.conftest import free_port


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def make_invoice(db, account, *, number=7, paid_minor=0) -> Invoice:
    """A stored invoice: £45.00 fee + £12.40 usage = £57.40 with 20% tax included."""
    invoice = Invoice(
        reseller_id=account.reseller_id,
        account_id=account.id,
        number=number,
        period_start=date(2030, 3, 15),
        period_end=date(2030, 4, 14),
        currency="GBP",
        subtotal_minor=4783,
        tax_rate_bp=2000,
        tax_minor=957,
        total_minor=5740,
        paid_minor=paid_minor,
        status=InvoiceStatus.OPEN,
        issued_at=datetime(2030, 3, 15, 2, 0, tzinfo=UTC),
    )
    invoice.lines = [
        InvoiceLine(kind="plan_fee", description="Complete plan, 15 Mar 2030", amount_minor=4500),
        InvoiceLine(kind="usage", description="Call usage", quantity=31, amount_minor=1240),
    ]
    db.add(invoice)
    db.flush()
    if paid_minor:
        db.add(PaymentAllocation(invoice_id=invoice.id, amount_minor=paid_minor, source="Card"))
    db.flush()
    return invoice


@pytest.fixture
def customer(db):
    user = make_customer(db, name="Bob <b>Builder</b>", email="bob@example.test")
    db.commit()
    return user


def test_invoice_pdf_shows_seller_buyer_lines_tax_totals_and_due(client, db, customer):
    invoice = make_invoice(db, customer.account, paid_minor=2000)
    db.commit()
    login(client, customer.email)
    response = client.get(f"/billing/invoices/{invoice.id}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    number = f"INV-{invoice.reseller_id}-000007"
    assert f'filename="{number}.pdf"' in response.headers["Content-Disposition"]
    text = pdf_text(response.data)
    for expected in [
        f"Invoice {number}",
        customer.account.reseller.name,  # the seller
        "Bob <b>Builder</b>",  # the buyer, as text
        f"Account {customer.account.number}",
        "Complete plan, 15 Mar 2030",
        "Call usage",
        "£45.00",
        "£12.40",
        "Subtotal (excluding tax) £47.83",
        "Tax at 20.00% (included) £9.57",
        "Total £57.40",
        "Paid £20.00",
        "Amount due £37.40",
        "15 Mar 2030",
    ]:
        assert expected in text, expected


def test_invoice_page_and_pdf_render_the_same_document(client, db, customer):
    invoice = make_invoice(db, customer.account)
    db.commit()
    login(client, customer.email)
    page = client.get(f"/billing/invoices/{invoice.id}").get_data(as_text=True)
    assert 'class="document document-invoice"' in page
    assert "Bob &lt;b&gt;Builder&lt;/b&gt;" in page and "<b>Builder" not in page
    assert f'href="/billing/invoices/{invoice.id}.pdf"' in page
    assert "Amount due" in page and "£57.40" in page
    listing = client.get("/billing/invoices").get_data(as_text=True)
    assert f"/billing/invoices/{invoice.id}.pdf" in listing


def test_another_accounts_documents_answer_404(client, db, customer):
    other = make_customer(db, reseller=make_reseller(db))
    invoice = make_invoice(db, other.account)
    db.commit()
    login(client, customer.email)
    assert client.get(f"/billing/invoices/{invoice.id}.pdf").status_code == 404
    assert client.get("/billing/invoices/999999.pdf").status_code == 404
    assert client.get("/billing/receipts/999999").status_code == 404
    assert client.get("/billing/receipts/999999.pdf").status_code == 404


def test_markup_in_names_prints_as_text(db):
    document = documents.Document(
        kind="receipt",
        title="Receipt",
        number="RCP-1-000001",
        status="paid",
        currency="GBP",
        seller=documents.Party('<img src="x.png">'),
        buyer=documents.Party("<script>alert(1)</script>"),
        dates=(("Paid", date(2030, 1, 1)),),
        lines=(documents.DocumentLine("<b>Top-up</b>", 1, 100),),
        total_minor=100,
        paid_minor=100,
    )
    text = " ".join(pdf_text(documents.render_pdf(document)).split())
    assert '<img src="x.png">' in text and "<script>alert(1)</script>" in text
    assert "<b>Top-up</b> 1 £1.00" in text and "Amount due £0.00" in text


def test_render_pdf_fetches_nothing(monkeypatch):
    """Even markup that slipped into a document could not make the server fetch a URL."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    html = f'<p>Hi</p><img src="{url}/img.png"><link rel="stylesheet" href="{url}/x.css">'
    monkeypatch.setattr(documents, "render_html", lambda document: html)
    try:
        assert pdf_text(documents.render_pdf(None)).strip() == "Hi"
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []


# --- Ledger CSV --------------------------------------------------------------------------------


def move(db, account, amount_minor, when, key, description="Call"):
    entry = post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE if amount_minor < 0 else EntryKind.ADJUSTMENT,
        amount_minor=amount_minor,
        description=description,
        idempotency_key=key,
    )
    db.get(LedgerEntry, entry.entry.id).created_at = when
    db.commit()


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_ledger_csv_for_a_date_range(client, db, customer):
    account = customer.account
    move(db, account, 5000, datetime(2030, 1, 1, 9, tzinfo=UTC), "a", "Opening credit")
    move(db, account, -125, datetime(2030, 1, 15, 9, tzinfo=UTC), "b", "=HYPERLINK(1)")
    move(db, account, -250, datetime(2030, 1, 31, 23, 59, tzinfo=UTC), "c")
    move(db, account, -500, datetime(2030, 2, 1, 0, 0, tzinfo=UTC), "d")
    other = make_customer(db, reseller=make_reseller(db))
    move(db, other.account, 700, datetime(2030, 1, 20, tzinfo=UTC), "e", "Someone else")
    login(client, customer.email)
    response = client.get("/billing/balance/export.csv?date_from=2030-01-15&date_to=2030-01-31")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0][:2] == ["Date (UTC)", "Description"]
    assert [(r[1], r[4], r[6]) for r in rows[1:]] == [
        ("'=HYPERLINK(1)", "-1.25", "48.75"),  # a formula is neutralised
        ("Call", "-2.50", "46.25"),  # the last day is included
    ]
    everything = csv_rows(client.get("/billing/balance/export.csv"))
    assert len(everything) == 5 and "Someone else" not in str(everything)
    usage_only = csv_rows(client.get("/billing/balance/export.csv?kind=usage"))
    assert {r[2] for r in usage_only[1:]} == {"usage"}


@pytest.mark.parametrize(
    "query",
    [
        "date_from=2030-13-01",
        "date_from=yesterday",
        "date_from=2030-02-01&date_to=2030-01-01",
        "date_to=%00%27",
        "kind=bogus",
    ],
)
def test_bad_csv_dates_get_a_clear_message(client, db, customer, query):
    login(client, customer.email)
    response = client.get(f"/billing/balance/export.csv?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "The ledger could not be exported" in page and "text/html" in response.content_type
    assert audit_balances(db) == []


def test_balance_page_links_the_csv_of_the_filtered_dates(client, db, customer):
    login(client, customer.email)
    html = client.get("/billing/balance?date_from=2030-01-01&date_to=2030-01-31").get_data(
        as_text=True
    )
    assert "/billing/balance/export.csv?date_from=2030-01-01&amp;date_to=2030-01-31" in html
    assert db.scalar(select(LedgerEntry.id)) is None


def test_date_filters_are_typed_as_the_portal_shows_dates(client, db, customer):
    """No browser picker in its own format (mm/dd/yyyy) beside "02 Dec 2026": a text box that
    takes the portal's format or ISO."""
    login(client, customer.email)
    html = client.get("/billing/balance?date_from=01 Jan 2030&date_to=2030-01-31").get_data(
        as_text=True
    )
    assert 'type="date"' not in html
    assert re.search(r'<input[^>]*id="date_from"[^>]*type="text"[^>]*value="01 Jan 2030"', html)
    assert re.search(r'<input[^>]*id="date_to"[^>]*value="2030-01-31"', html)  # as typed
    assert "/billing/balance/export.csv?date_from=2030-01-01&amp;date_to=2030-01-31" in html
    assert "Not a valid date" in client.get("/billing/balance?date_from=13/13/2030").text
