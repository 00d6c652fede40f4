"""Billing views: invoices (review billing details, list, printable invoice) and notices."""

from flask import abort, flash, redirect, url_for

from portal import db, documents, notifications
from portal import invoices as invoicing
from portal.billing import bp
from portal.billing.context import current_account
from portal.billing.plans_views import status_for
from portal.domain import DomainError, NotFound
from portal.i18n import ngettext
from portal.money import format_plain
from portal.payments import invoice_payments
from portal.payments.forms import PayInvoiceForm, new_request_key
from portal.payments.gateway import AuthenticationRequired, GatewayUnavailable
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
    return _invoice_page(invoice_id)


def _invoice_page(invoice_id: int, pay_form: PayInvoiceForm | None = None, status: int = 200):
    account = current_account()
    session = db.session()
    try:
        invoice = invoicing.get_invoice(session, account_id=account.id, invoice_id=invoice_id)
    except NotFound:
        abort(404)
    payable = invoice_payments.can_pay(account, invoice)
    if payable and pay_form is None:
        due = invoice_payments.amount_due(invoice)
        pay_form = PayInvoiceForm(
            currency=account.currency,
            formdata=None,
            amount=format_plain(due, account.currency),
            idempotency_key=new_request_key(),
        )
    credit_note = invoicing.credit_note_for(session, invoice.id)
    return render(
        "billing/invoices_detail.html",
        "billing/invoices_detail.html",
        status,
        account=account,
        invoice=invoice,
        number=invoicing.invoice_number(invoice),
        document=documents.invoice_document(session, invoice),
        pay_form=pay_form,
        payable=payable,
        amount_due=invoice_payments.amount_due(invoice),
        credit_note=credit_note,
        credit_note_number=invoicing.credit_note_number(credit_note) if credit_note else "",
    )


@bp.post("/invoices/<int:invoice_id>/pay")
def pay_invoice(invoice_id: int):
    """Pay now: charge the saved cards (primary, then secondary) for this invoice."""
    account = current_account()
    form = PayInvoiceForm(currency=account.currency)
    if not form.validate():
        return _invoice_page(invoice_id, form, status_for(422))
    try:
        payment = invoice_payments.pay_invoice(
            db.session(),
            account=account,
            invoice_id=invoice_id,
            amount_minor=form.amount.minor,
            idempotency_key=f"invoice:{account.id}:{invoice_id}:{form.idempotency_key.data}",
        )
    except NotFound:
        abort(404)
    except AuthenticationRequired as exc:
        # The bank wants the customer (3-D Secure): Stripe.js confirms it on its own page,
        # which then comes back to this invoice.
        target = url_for("billing.authenticate_payment", payment_id=exc.payment_id)
        return redirect(target, 303)
    except DomainError as exc:
        db.session().rollback()
        if not isinstance(exc, GatewayUnavailable):
            # Refused for good: a new attempt is a new payment. While the payment service
            # has not answered, the same key stays, so a retry can never charge twice.
            form.idempotency_key.data = new_request_key()
        target = form.amount if exc.field == "amount" else None
        if target is not None:
            target.errors = [exc.message]
        else:
            form.form_errors.append(exc.message)
        return _invoice_page(invoice_id, form, status_for(422))
    flash(invoice_payments.paid_with(payment), "success")
    return redirect(url_for("billing.invoice_detail", invoice_id=invoice_id), code=303)


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
    flash(
        ngettext("Marked %(num)s notice as read.", "Marked %(num)s notices as read.", count),
        "success",
    )
    return redirect(url_for("billing.notices"), code=303)
