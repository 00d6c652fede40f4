"""Stored XSS and CSV formula injection: markup saved in names and descriptions renders
escaped on every page each role can reach (full pages AND HTMX fragments), and CSV exports
neutralise spreadsheet formulas.

The demo data is poisoned directly in the database (so even values the forms would refuse,
like a markup top-up card series, are covered), then every page is crawled like a browser.
"""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import select, text

from portal.models import (
    Account,
    AuditLog,
    BatchStatus,
    Notice,
    Reseller,
    TopupCard,
    TopupCardBatch,
    utcnow,
)
from tests.builders import login

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
PAYLOAD = f'=HYPERLINK("http://evil.example"){SCRIPT}{IMG}'
DANGEROUS = ("<script>alert(1)", "<img src=x onerror", "onerror=alert(2)>")
POISONED = {
    "accounts": ["name"],
    "plans": ["name"],
    "addons": ["label"],
    "customer_classes": ["name"],
    "resellers": ["name"],
    "ledger_entries": ["description", "reference"],
    "card_codes": ["extension"],
    "card_code_recharges": ["order_number"],
    "topup_cards": ["series", "serial"],
    "topup_products": ["label"],
    "users": ["name"],
}
ROLES = {
    "customer": ("alice@example.com", ["/billing/balance"], ("/billing", "/profile")),
    "reseller admin": ("admin@acme.example", ["/admin/"], ("/admin", "/profile")),
    "operator": ("operator@example.com", ["/admin/"], ("/admin", "/profile")),
}


@pytest.fixture
def poisoned(app, db, demo):
    for table, columns in POISONED.items():
        values = ", ".join(f"{column} = :p || id" for column in columns)  # unique names
        db.execute(text(f"UPDATE {table} SET {values}"), {"p": PAYLOAD})  # noqa: S608
    # The demo admins sign in with a password here (two-factor is proved in tests/auth).
    db.execute(text("UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL"))
    acme = db.scalar(select(Reseller).order_by(Reseller.id))
    alice = db.scalar(select(Account).where(Account.number == "100001"))
    batch = TopupCardBatch(
        reseller_id=acme.id,
        series=PAYLOAD,
        quantity=1,
        generated=1,
        amount_minor=500,
        currency="GBP",
        pin_length=10,
        status=BatchStatus.DONE,
        error=PAYLOAD,
    )
    db.add(batch)
    db.flush()
    db.execute(
        text("UPDATE topup_cards SET batch_id = :b WHERE id = (SELECT MIN(id) FROM topup_cards)"),
        {"b": batch.id},
    )
    db.add_all(
        [
            AuditLog(
                reseller_id=acme.id,
                action="customer.update",
                object_type="account",
                object_id=str(alice.id),
                before=f'{{"name": "{PAYLOAD}"}}',
                after=PAYLOAD,
                created_at=utcnow(),
            ),
            Notice(account_id=alice.id, message=PAYLOAD),
        ]
    )
    db.commit()
    assert db.scalar(select(TopupCard.series).limit(1)).startswith(PAYLOAD)
    return batch.id


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("href", "hx-get"):
            if a.get(name) and tag in ("a", "button", "div", "tr", "span", "section", "tbody"):
                self.links.append(a[name])


def crawl_pages(client, start: list[str], prefix: str | tuple[str, ...], limit: int = 80):
    """Every same-area page reachable by links: (url, response) for full and HTMX gets."""
    seen, queue = set(), list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(path, headers=headers)
            yield path, headers, response
        if response.status_code != 200 or "html" not in response.content_type:
            continue
        parser = Links()
        parser.feed(client.get(path).get_data(as_text=True))
        for link in parser.links:
            parts = urlsplit(urljoin(f"http://localhost{path}", link))
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.netloc == "localhost" and parts.path.startswith(prefix) and local not in seen:
                queue.append(local)


def check_csv(body: str, where: str) -> int:
    checked = 0
    for row in csv.reader(io.StringIO(body)):
        for cell in row:
            if "HYPERLINK" in cell:
                checked += 1
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (where, cell)
    return checked


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_markup_renders_escaped_everywhere(app, poisoned, role):
    email, start, prefix = ROLES[role]
    client = app.test_client()
    assert login(client, email, "demo-pass").status_code == 302
    pages = csv_cells = payload_seen = 0
    visits = list(crawl_pages(client, start, prefix))
    if role != "customer":  # the batch page and its CSV are reached from the Generate form
        batch = f"/admin/topup-cards/batches/{poisoned}"
        for path in (batch, f"{batch}/cards.csv"):
            visits += [(path, h, client.get(path, headers=h)) for h in ({}, {"HX-Request": "true"})]
    for path, headers, response in visits:
        assert response.status_code < 500, (path, headers, response.status_code)
        if response.content_type == "application/pdf":
            continue  # no markup runs in a PDF; tests/documents checks markup prints as text
        body = response.get_data(as_text=True)
        if "csv" in response.content_type:
            csv_cells += check_csv(body, path)
            continue
        pages += 1
        for dangerous in DANGEROUS:
            assert dangerous not in body, (path, headers, dangerous)
        payload_seen += "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert pages > 5, pages
    assert payload_seen > 0  # the payload was rendered (escaped), so the check meant something
    if role != "customer":
        assert csv_cells > 0, "no CSV export carried the payload"
