"""Customer documents: invoices and receipts as HTML and PDF, and the ledger as CSV.

One Jinja partial (templates/documents/_document.html) lays out every document: the
invoice and receipt pages include it, and WeasyPrint renders the same partial to PDF.
Documents and emails are rendered by an environment of our own (same templates, same
filters) so jobs and domain code can render without a Flask app context.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import ROOT
from portal.domain import NotFound
from portal.i18n import _, current_language
from portal.models import (
    Account,
    EntryKind,
    Invoice,
    LedgerEntry,
    Receipt,
    Reseller,
)
from portal.templating import FILTERS, GETTEXT

STYLESHEET = ROOT / "static" / "css" / "document.css"
# WeasyPrint logs every rendering step at INFO: noise in the app's log.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


@cache
def environment() -> Environment:
    """Jinja over the app's templates, without Flask: .html is autoescaped, .txt is not."""
    env = Environment(
        loader=FileSystemLoader(str(ROOT / "templates")),
        autoescape=select_autoescape(["html"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    # `_()` and `ngettext()` as in the app's templates: the request's language, else English
    # (or the language given to portal.i18n.rendering_in).
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(**GETTEXT, newstyle=True)
    return env


# --- The document model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    name: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentLine:
    description: str
    quantity: int
    amount_minor: int


@dataclass(frozen=True)
class DocumentPayment:
    paid_at: datetime
    amount_minor: int
    source: str


@dataclass(frozen=True)
class Document:
    """What an invoice or receipt shows, whichever way it is rendered."""

    kind: str  # "invoice" or "receipt"
    title: str
    number: str
    status: str
    currency: str
    seller: Party
    buyer: Party
    dates: tuple[tuple[str, date | datetime], ...]
    lines: tuple[DocumentLine, ...]
    total_minor: int
    paid_minor: int
    # None: no tax breakdown (a receipt: the tax is on the invoices).
    subtotal_minor: int | None = None
    tax_minor: int | None = None
    tax_rate_bp: int = 0
    payments: tuple[DocumentPayment, ...] = ()
    note: str = ""

    @property
    def due_minor(self) -> int:
        return max(self.total_minor - self.paid_minor, 0)

    @property
    def tax_rate_text(self) -> str:
        whole, rest = divmod(self.tax_rate_bp, 100)
        return f"{whole}.{rest:02d}%"

    @property
    def filename(self) -> str:
        return f"{self.number}.pdf"


def _parties(db: Session, reseller_id: int, account_id: int) -> tuple[Party, Party]:
    reseller = db.get(Reseller, reseller_id)
    account = db.get(Account, account_id)
    details = (f"Account {account.number}", account.email) if account.email else ()
    return Party(reseller.name), Party(account.name, details or (f"Account {account.number}",))


def invoice_document(db: Session, invoice: Invoice) -> Document:
    """The document of a stored invoice (its lines, tax, payments and what is still due)."""
    from portal.invoices import allocations_of, invoice_number

    seller, buyer = _parties(db, invoice.reseller_id, invoice.account_id)
    payments = tuple(
        DocumentPayment(a.created_at, a.amount_minor, a.source)
        for a in allocations_of(db, invoice.id)
    )
    return Document(
        kind="invoice",
        title=_("Invoice"),
        number=invoice_number(invoice),
        status=invoice.status.value,
        currency=invoice.currency,
        seller=seller,
        buyer=buyer,
        dates=(
            ("Issued", invoice.issued_at),
            *((("Due", invoice.due_on),) if _shows_due(invoice) else ()),
            ("Period from", invoice.period_start),
            ("Period to", invoice.period_end),
        ),
        lines=tuple(
            DocumentLine(line.description, line.quantity, line.amount_minor)
            for line in invoice.lines
        ),
        total_minor=invoice.total_minor,
        paid_minor=invoice.paid_minor,
        subtotal_minor=invoice.subtotal_minor,
        tax_minor=invoice.tax_minor,
        tax_rate_bp=invoice.tax_rate_bp,
        payments=payments,
    )


def _shows_due(invoice: Invoice) -> bool:
    """A due date means something on a postpaid invoice (a prepaid one is paid when issued)."""
    return invoice.due_on is not None and invoice.due_on != invoice.issued_at.date()


def receipt_number(receipt: Receipt) -> str:
    return f"RCP-{receipt.reseller_id}-{receipt.number:06d}"


def receipt_document(db: Session, receipt: Receipt) -> Document:
    """The document of a receipt: one paid line, nothing due."""
    seller, buyer = _parties(db, receipt.reseller_id, receipt.account_id)
    return Document(
        kind="receipt",
        title=_("Receipt"),
        number=receipt_number(receipt),
        status="paid",
        currency=receipt.currency,
        seller=seller,
        buyer=buyer,
        dates=(("Paid", receipt.issued_at),),
        lines=(DocumentLine(receipt.description, 1, receipt.amount_minor),),
        total_minor=receipt.amount_minor,
        paid_minor=receipt.amount_minor,
        payments=(DocumentPayment(receipt.issued_at, receipt.amount_minor, receipt.method),),
        note="Payment received with thanks. Tax is shown on your invoices.",
    )


# --- Rendering ---------------------------------------------------------------------------------


def render_html(document: Document) -> str:
    """The document as a standalone HTML page (what WeasyPrint prints)."""
    page = environment().get_template("documents/pdf.html")
    return page.render(document=document, document_language=current_language())


def render_pdf(document: Document) -> bytes:
    """The document as PDF bytes (WeasyPrint; nothing is fetched from anywhere)."""
    from weasyprint import CSS, HTML
    from weasyprint.urls import URLFetcher

    # Only inline data: URLs, so a document can never make the server fetch a URL.
    fetcher = URLFetcher(allowed_protocols=["data"])
    html = HTML(string=render_html(document), base_url=None, url_fetcher=fetcher)
    stylesheet = CSS(string=STYLESHEET.read_text(encoding="utf-8"), url_fetcher=fetcher)
    return html.write_pdf(stylesheets=[stylesheet])


def get_receipt(db: Session, *, account_id: int, receipt_id: int) -> Receipt:
    """One receipt of the account; another account's id raises NotFound."""
    receipt = db.scalar(
        select(Receipt).where(Receipt.id == receipt_id, Receipt.account_id == account_id)
    )
    if receipt is None:
        raise NotFound(_("No such receipt."))
    return receipt


def receipts_for(db: Session, account_id: int, limit: int = 200) -> list[Receipt]:
    """The account's latest receipts, newest first."""
    return list(
        db.scalars(
            select(Receipt)
            .where(Receipt.account_id == account_id)
            .order_by(Receipt.id.desc())
            .limit(limit)
        )
    )


def receipts_of_entries(db: Session, entries: list[LedgerEntry]) -> dict[int, Receipt]:
    """The receipt of each ledger entry that credited a card payment (entry id -> receipt)."""
    payment_of_entry = {}
    for entry in entries:
        kind, _sep, raw_id = entry.idempotency_key.partition(":")
        if kind == "payment" and raw_id.isdigit() and len(raw_id) < 19:
            payment_of_entry[int(raw_id)] = entry.id
    if not payment_of_entry:
        return {}
    found = db.scalars(select(Receipt).where(Receipt.payment_id.in_(payment_of_entry)))
    return {payment_of_entry[r.payment_id]: r for r in found}


def attachment_refs(*documents: Invoice | Receipt) -> tuple[str, ...]:
    """Outbox references of documents to attach ("invoice:12")."""
    return tuple(f"{type(d).__name__.lower()}:{d.id}" for d in documents)


def _attached(db: Session, ref: str) -> Document | None:
    kind, _sep, raw_id = ref.partition(":")
    model = {"invoice": Invoice, "receipt": Receipt}.get(kind)
    found = db.get(model, int(raw_id)) if model and raw_id.isdigit() and len(raw_id) < 19 else None
    if found is None:
        return None
    return (invoice_document if kind == "invoice" else receipt_document)(db, found)


def _refs(refs: str) -> list[str]:
    return [ref for ref in (refs or "").split(",") if ref]


def attachment_files(db: Session, refs: str) -> list[tuple[str, bytes]]:
    """(filename, PDF) for each reference of an outbox mail; NotFound if one is gone."""
    files = []
    for ref in _refs(refs):
        document = _attached(db, ref)
        if document is None:
            raise NotFound(_("The attached document %(ref)s no longer exists.", ref=ref))
        files.append((document.filename, render_pdf(document)))
    return files


def attachment_names(db: Session, refs: str) -> list[str]:
    """The file names an outbox mail will attach, for the admin preview."""
    documents = [(ref, _attached(db, ref)) for ref in _refs(refs)]
    return [d.filename if d else f"{ref} (no longer exists)" for ref, d in documents]


# --- The ledger as CSV -------------------------------------------------------------------------

CSV_HEADER = ["Date (UTC)", "Description", "Kind", "Reference", "Amount", "Currency", "Balance"]
CSV_BATCH = 1000


def neutralise(cell: str) -> str:
    """Stop spreadsheets from running a cell as a formula."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def ledger_csv(
    db: Session,
    *,
    account: Account,
    date_from: date | None,
    date_to: date | None,
    kind: EntryKind | None = None,
) -> Iterator[str]:
    """The account's ledger entries in the date range (both days included), oldest first."""
    from portal.money import format_plain

    stmt = select(LedgerEntry).where(LedgerEntry.account_id == account.id)
    if date_from is not None:
        stmt = stmt.where(LedgerEntry.created_at >= _day_start(date_from))
    if date_to is not None:
        stmt = stmt.where(LedgerEntry.created_at < _day_start(date_to + timedelta(days=1)))
    if kind is not None:
        stmt = stmt.where(LedgerEntry.kind == kind)
    yield _csv_line(CSV_HEADER)
    # Streamed in batches: a year of call usage is many rows.
    for entry in db.scalars(stmt.order_by(LedgerEntry.id).execution_options(yield_per=CSV_BATCH)):
        yield _csv_line(
            [
                entry.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                neutralise(entry.description),
                entry.kind.value,
                neutralise(entry.reference or ""),
                format_plain(entry.amount_minor, entry.currency),
                entry.currency,
                format_plain(entry.balance_after_minor, entry.currency),
            ]
        )


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
