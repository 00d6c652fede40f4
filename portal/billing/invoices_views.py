"""Billing views: invoices (review billing details, list, printable invoice) and notices."""

from flask import abort, flash, redirect, url_for

from portal import db, notifications
from portal import invoices as invoicing
from portal.billing import bp
from portal.billing.context import current_account
from portal.domain import NotFound
from portal.web import render


@bp.get("/invoices")
def invoices():
    """The account's invoices and any unallocated payment waiting for the next one."""
    account = current_account()
    session = db.session()
    return render(
        "billing/invoices.html",
        "billing/invoices_table.html",
        account=account,
        invoice_rows=invoicing.invoices_for(session, account.id),
        unallocated=invoicing.unallocated_minor(session, account.id),
        number=invoicing.invoice_number,
    )


@bp.get("/invoices/preview")
def invoices_preview():
    """Review billing details: the coming invoice as it stands today."""
    account = current_account()
    try:
        draft = invoicing.review_billing_details(db.session(), account=account)
    except NotFound as exc:
        return render(
            "billing/invoices_preview.html",
            "billing/invoices_preview.html",
            draft=None,
            account=account,
            message=exc.message,
        )
    return render(
        "billing/invoices_preview.html",
        "billing/invoices_preview.html",
        draft=draft,
        account=account,
    )


@bp.get("/invoices/<int:invoice_id>")
def invoice_detail(invoice_id: int):
    """One invoice, laid out to print (another account's invoice answers 404)."""
    account = current_account()
    session = db.session()
    try:
        invoice = invoicing.get_invoice(session, account_id=account.id, invoice_id=invoice_id)
    except NotFound:
        abort(404)
    credit_note = invoicing.credit_note_for(session, invoice.id)
    return render(
        "billing/invoices_detail.html",
        "billing/invoices_detail.html",
        account=account,
        invoice=invoice,
        number=invoicing.invoice_number(invoice),
        allocations=invoicing.allocations_of(session, invoice.id),
        credit_note=credit_note,
        credit_note_number=invoicing.credit_note_number(credit_note) if credit_note else "",
    )


@bp.get("/notices")
def notices():
    """Messages for this account: warnings, invoices, failed automatic top-ups."""
    account = current_account()
    return render(
        "billing/notices.html",
        "billing/notices_list.html",
        notices=notifications.notices_for(db.session(), account.id),
    )


@bp.post("/notices/read")
def notices_read():
    """Mark every notice as read."""
    account = current_account()
    session = db.session()
    count = notifications.mark_notices_read(session, account_id=account.id)
    session.commit()
    flash(f"Marked {count} notice(s) as read.", "success")
    return redirect(url_for("billing.notices"), code=303)
