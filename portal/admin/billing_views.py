"""Admin views: Billing, the seed's three stages (Review Billing Details, Generate the Invoice,
Send out the Invoice), the invoice list with CSV, and void with a credit note.

Reseller admins see their own customers, the operator everyone: every object is loaded
through the tenant scope, so another reseller's account or invoice id answers 404.
"""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for
from flask_login import current_user

from portal import billing_admin, db
from portal import invoices as invoicing
from portal.admin import bp
from portal.admin.billing_forms import ActionForm, GenerateForm, InvoiceFilterForm, VoidForm
from portal.domain import DomainError, NotFound
from portal.i18n import _
from portal.models import Account, Invoice, InvoiceStatus, utcnow
from portal.security import get_scoped_or_404, tenant_select
from portal.web import is_htmx, render


def _int_arg(name: str) -> int:
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 6 else 1


def _done(message: str, endpoint: str, **values):
    """After a change: the flash, then the page of `endpoint` (HTMX follows HX-Redirect)."""
    flash(message, "success")
    url = url_for(endpoint, **values)
    if is_htmx():
        return Response("", headers={"HX-Redirect": url})
    return redirect(url, 303)


def _refused_status() -> int:
    # htmx 2 does not swap 4xx answers: HTMX gets 200 with the message shown.
    return 200 if is_htmx() else 422


# --- Overview: review every due account, batch generate and send -------------------------------


def _overview_context(**extra) -> dict:
    session = db.session()
    return {
        "review": billing_admin.review_due(
            session, scoped_accounts=tenant_select(Account), now=utcnow()
        ),
        "unsent": len(billing_admin.unsent_ids(session, scoped=tenant_select(Invoice))),
        **extra,
    }


@bp.get("/billing", endpoint="billing")
def billing_overview():
    """Review Billing Details of every due account, with per-account totals and a grand total."""
    return render("admin/billing/index.html", "admin/billing/_stages.html", **_overview_context())


@bp.get("/billing/review")
def billing_find():
    """Review one customer by account number (a short cut to the customer's Billing tab)."""
    number = request.args.get("number", "").strip()[:32]
    if not number:
        return billing_overview()
    account = db.session().scalar(tenant_select(Account).where(Account.number == number))
    if account is None:
        context = _overview_context(
            find_error=f"No customer has the account number {number}.", find_number=number
        )
        return render("admin/billing/index.html", "admin/billing/_find.html", 404, **context)
    return redirect(url_for("admin.billing_customer", customer_id=account.id), 303)


@bp.post("/billing/generate")
def billing_generate_all():
    """Generate the Invoice for every due account; each account's failure is reported."""
    form = ActionForm()
    if not form.validate_on_submit():
        return _overview_refused(_("The form expired; reload the page and try again."))
    results = billing_admin.generate_batch(
        db.session(),
        scoped_accounts=tenant_select(Account),
        actor_user_id=current_user.id,
        now=utcnow(),
    )
    return render(
        "admin/billing/index.html",
        "admin/billing/_stages.html",
        **_overview_context(results=results),
    )


@bp.post("/billing/send-unsent")
def billing_send_unsent():
    """Send all unsent: every generated invoice that has not gone out yet."""
    form = ActionForm()
    if not form.validate_on_submit():
        return _overview_refused(_("The form expired; reload the page and try again."))
    summary = billing_admin.send_unsent(
        db.session(), scoped=tenant_select(Invoice), actor_user_id=current_user.id, now=utcnow()
    )
    return render(
        "admin/billing/index.html",
        "admin/billing/_stages.html",
        **_overview_context(send_summary=summary),
    )


def _overview_refused(message: str):
    return render(
        "admin/billing/index.html",
        "admin/billing/_stages.html",
        _refused_status(),
        **_overview_context(error=message),
    )


# --- One customer: review and generate --------------------------------------------------------


def _customer_context(account: Account, **extra) -> dict:
    session = db.session()
    try:
        draft, message = invoicing.review_billing_details(session, account=account), ""
    except NotFound as exc:
        draft, message = None, exc.message
    generate_form = extra.pop("generate_form", None) or GenerateForm(formdata=None)
    if draft is not None and generate_form.period.data is None:
        generate_form.period.data = draft.period.start
    return {
        "account": account,
        "tab": "billing",
        "draft": draft,
        "message": message,
        "generate_form": generate_form,
        "periods_due": billing_admin.periods_due_count(session, account=account, now=utcnow()),
        "invoice_rows": invoicing.invoices_for(session, account.id)[:12],
        "number": invoicing.invoice_number,
        "status_label": billing_admin.status_label,
        **extra,
    }


@bp.get("/billing/customers/<int:customer_id>")
def billing_customer(customer_id: int):
    """Review Billing Details of one customer: the coming invoice's lines and totals."""
    account = get_scoped_or_404(Account, customer_id)
    return render(
        "admin/billing/customer.html",
        "admin/billing/_review.html",
        **_customer_context(account),
    )


@bp.post("/billing/customers/<int:customer_id>/generate")
def billing_customer_generate(customer_id: int):
    """Generate the Invoice of the reviewed period (and any older one still missing)."""
    account = get_scoped_or_404(Account, customer_id)
    form = GenerateForm()
    now = utcnow()
    try:
        if not form.validate_on_submit():
            raise DomainError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        billing_admin.check_period_started(form.period.data, now)
    except DomainError as exc:
        return _customer_refused(account, form, exc.message)
    result = billing_admin.generate_for(
        db.session(), account=account, actor_user_id=current_user.id, now=now
    )
    if result.error:
        return _customer_refused(account, form, result.error)
    return _generated(account, form.period.data, result)


def _generated(account: Account, period_start, result: billing_admin.GenerateResult):
    session = db.session()
    invoice = billing_admin.invoice_of_period(
        session, account_id=account.id, period_start=period_start
    ) or (result.made[-1] if result.made else None)
    if invoice is None:
        return _customer_refused(account, GenerateForm(formdata=None), "Nothing was due to bill.")
    number = invoicing.invoice_number(invoice)
    if result.made:
        message = f"Generated {', '.join(result.numbers)}. Review, then send out the invoice."
    else:
        message = f"Invoice {number} had already been generated for that period."
    return _done(message, "admin.billing_invoice", invoice_id=invoice.id)


def _customer_refused(account: Account, form: GenerateForm, message: str):
    db.session().rollback()
    return render(
        "admin/billing/customer.html",
        "admin/billing/_review.html",
        _refused_status(),
        **_customer_context(account, generate_form=form, error=message),
    )


# --- The invoice list and its CSV ------------------------------------------------------------


def _filter_form() -> InvoiceFilterForm:
    form = InvoiceFilterForm(request.args)
    form.validate()
    return form


@bp.get("/billing/invoices")
def billing_invoices():
    """Invoices filtered by status (incl. draft), period and customer; HTMX swaps the table."""
    form = _filter_form()
    page = _int_arg("page")
    rows, more = [], False
    if not form.errors:
        rows, more = billing_admin.search_invoices(
            db.session(), scoped=tenant_select(Invoice), filters=form.filters(), page=page
        )
    return render(
        "admin/billing/invoices.html",
        "admin/billing/_invoices_table.html",
        form=form,
        rows=rows,
        page=page,
        more=more,
        query=request.args.to_dict(),
    )


@bp.get("/billing/invoices.csv")
def billing_invoices_csv():
    """Download CSV of the filtered invoice list (every page)."""
    form = _filter_form()
    if form.errors:
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        return Response(f"Correct the filters first: {errors}", 400, mimetype="text/plain")
    text = billing_admin.invoices_csv(
        db.session(), scoped=tenant_select(Invoice), filters=form.filters()
    )
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="invoices.csv"'},
    )


# --- One invoice: send, resend, void -----------------------------------------------------------


def _invoice_context(invoice: Invoice, **extra) -> dict:
    session = db.session()
    note = invoicing.credit_note_for(session, invoice.id)
    return {
        "invoice": invoice,
        "account": session.get(Account, invoice.account_id),
        "number": invoicing.invoice_number(invoice),
        "status_label": billing_admin.status_label(invoice),
        "credit_note": note,
        "credit_note_number": invoicing.credit_note_number(note) if note else "",
        "allocations": invoicing.allocations_of(session, invoice.id),
        "send_form": ActionForm(),
        "void_form": extra.pop("void_form", None) or VoidForm(formdata=None),
        "void": InvoiceStatus.VOID,
        **extra,
    }


def _invoice_panel(invoice: Invoice, status: int = 200, **extra):
    return render(
        "admin/billing/invoice.html",
        "admin/billing/_invoice_panel.html",
        status,
        **_invoice_context(invoice, **extra),
    )


@bp.get("/billing/invoices/<int:invoice_id>")
def billing_invoice(invoice_id: int):
    """One invoice as the admin sees it: lines, totals, sending, payments, credit note."""
    return _invoice_panel(get_scoped_or_404(Invoice, invoice_id))


def _invoice_action(invoice_id: int, form, refused: str, action):
    """Validate the form, run one operation on the tenant's invoice, answer with its panel."""
    invoice = get_scoped_or_404(Invoice, invoice_id)
    try:
        if not form.validate_on_submit():
            raise DomainError(refused)
        message = action(invoice)
    except DomainError as exc:
        db.session().rollback()
        field = getattr(form, exc.field or "", None)
        if field is not None:
            field.errors = [*field.errors, exc.message]
        extra = {"void_form": form} if isinstance(form, VoidForm) else {}
        return _invoice_panel(invoice, _refused_status(), error=exc.message, **extra)
    if is_htmx():
        return _invoice_panel(invoice, message=message)
    return _done(message, "admin.billing_invoice", invoice_id=invoice.id)


@bp.post("/billing/invoices/<int:invoice_id>/send")
def billing_invoice_send(invoice_id: int):
    """Send out the Invoice (or resend it) by email through the outbox."""

    def send(invoice: Invoice) -> str:
        return billing_admin.send_one(
            db.session(),
            invoice=invoice,
            resend=request.form.get("resend") == "1",
            actor_user_id=current_user.id,
            now=utcnow(),
        )

    expired = "The form expired; reload the page and try again."
    return _invoice_action(invoice_id, ActionForm(), expired, send)


@bp.post("/billing/invoices/<int:invoice_id>/void")
def billing_invoice_void(invoice_id: int):
    """Void the invoice with a reason: a numbered credit note gives its total back."""
    form = VoidForm()

    def void(invoice: Invoice) -> str:
        note = billing_admin.void(
            db.session(), invoice=invoice, reason=form.reason.data, actor_user_id=current_user.id
        )
        return (
            f"Invoice {invoicing.invoice_number(invoice)} is void: credit note "
            f"{invoicing.credit_note_number(note)} issued."
        )

    return _invoice_action(invoice_id, form, "Correct the form below.", void)
