"""Billing views: invoice and receipt PDFs, receipts, and the ledger as CSV."""

from flask import Response, abort, request, url_for

from portal import db, documents
from portal import invoices as invoicing
from portal.billing import bp
from portal.billing.context import current_account
from portal.billing.forms import HistoryFilterForm
from portal.domain import NotFound
from portal.models import EntryKind
from portal.web import render


def _pdf(document: documents.Document) -> Response:
    return Response(
        documents.render_pdf(document),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{document.filename}"'},
    )


@bp.get("/invoices/<int:invoice_id>.pdf")
def invoice_pdf(invoice_id: int):
    """Download one invoice as PDF (another account's invoice answers 404)."""
    session = db.session()
    try:
        invoice = invoicing.get_invoice(
            session, account_id=current_account().id, invoice_id=invoice_id
        )
    except NotFound:
        abort(404)
    return _pdf(documents.invoice_document(session, invoice))


@bp.get("/receipts")
def receipts():
    """The account's receipts, one per successful card payment."""
    account = current_account()
    return render(
        "billing/receipts.html",
        "billing/receipts_table.html",
        account=account,
        receipts=documents.receipts_for(db.session(), account.id),
        number=documents.receipt_number,
    )


def _receipt(receipt_id: int):
    try:
        return documents.get_receipt(
            db.session(), account_id=current_account().id, receipt_id=receipt_id
        )
    except NotFound:
        abort(404)


@bp.get("/receipts/<int:receipt_id>")
def receipt_detail(receipt_id: int):
    """One receipt, laid out like the PDF (another account's receipt answers 404)."""
    document = documents.receipt_document(db.session(), _receipt(receipt_id))
    return render(
        "documents/page.html",
        "documents/page.html",
        document=document,
        pdf_url=url_for("billing.receipt_pdf", receipt_id=receipt_id),
        back_url=url_for("billing.receipts"),
    )


@bp.get("/receipts/<int:receipt_id>.pdf")
def receipt_pdf(receipt_id: int):
    """Download one receipt as PDF."""
    return _pdf(documents.receipt_document(db.session(), _receipt(receipt_id)))


@bp.get("/balance/export.csv")
def ledger_csv():
    """The account's ledger for a date range (the history filters) as CSV."""
    account = current_account()
    form = HistoryFilterForm(request.args)
    if not form.validate():
        errors = [message for messages in form.errors.values() for message in messages]
        return render("billing/export_error.html", "billing/export_error.html", 400, errors=errors)
    kind = EntryKind(form.kind.data) if form.kind.data else None
    rows = documents.ledger_csv(
        db.session(),
        account=account,
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        kind=kind,
    )
    dates = f"{form.date_from.data or 'start'}-{form.date_to.data or 'today'}"
    name = f"ledger-{account.number}-{dates}"
    return Response(
        "".join(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
