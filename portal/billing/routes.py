"""Billing views: the account balance, its history, and adding credit by card."""

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db, documents, overview
from portal.billing import bp, freshness
from portal.billing.context import current_account
from portal.billing.forms import HistoryFilterForm
from portal.domain import DomainError, NotFound
from portal.history import HistoryFilter, history_page
from portal.i18n import _
from portal.ledger import available_funds, effective_credit_limit
from portal.models import CardRole, EntryKind, PaymentStatus
from portal.payments import invoice_payments, service
from portal.payments.forms import TopUpForm, new_request_key
from portal.payments.gateway import AuthenticationRequired
from portal.web import is_htmx, render


def _history_filters(form: HistoryFilterForm) -> HistoryFilter:
    if not form.validate():
        return HistoryFilter()
    kind = EntryKind(form.kind.data) if form.kind.data else None
    return HistoryFilter(kind, form.date_from.data, form.date_to.data)


def _before_id() -> int | None:
    raw = request.args.get("before", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _receipt_links(page) -> dict:
    # History rows of card payments link to their receipts.
    return {
        "receipts_by_entry": documents.receipts_of_entries(db.session(), page.entries),
        "receipt_number": documents.receipt_number,
    }


def _add_credit_context(account, form: TopUpForm | None = None, **extra) -> dict:
    session = db.session()
    form = form or TopUpForm(
        products=service.topup_products(session, account=account), formdata=None
    )
    form.idempotency_key.data = new_request_key()  # a new key for the next submission
    return {
        "topup_form": form,
        "primary_card": service.card_with_role(session, account=account, role=CardRole.PRIMARY),
        "awaiting": service.payments_awaiting_authentication(session, account=account),
        **extra,
    }


def _summary_context(account) -> dict:
    credit_limit = effective_credit_limit(account)
    available = available_funds(account)
    return {
        "account": account,
        "credit_limit": credit_limit,
        "available": available,
        # The live figures poll with this validator (If-None-Match): 304 while unchanged.
        "summary_etag": freshness.etag(
            "summary",
            account.id,
            account.balance_minor,
            credit_limit,
            available,
            account.currency,
            freshness.locale_key(),
        ),
    }


@bp.get("/", strict_slashes=False)
def home():
    """/billing is the customer's home: balance, funds, next invoice, top-up, latest activity."""
    account = current_account()
    return render(
        "billing/home.html",
        "billing/_home.html",
        home=overview.customer_home(db.session(), account=account),
        account=account,
    )


@bp.get("/balance")
def balance():
    """Account balance: figures, chart, and the history (HTMX swaps just the history).

    A repeat view of an unchanged page or fragment answers 304 from its ETag: the user,
    the account row and the newest ledger entry id are all it costs.
    """
    account = current_account()
    session = db.session()
    latest_id = freshness.latest_entry_id(session, account.id)
    summary = _summary_context(account)
    tag = freshness.page_etag(
        "balance",
        is_htmx(),
        current_user.id,
        current_user.email,
        current_user.is_admin,
        current_user.is_operator,
        summary["summary_etag"],
        latest_id,
        freshness.today(),
    )
    if freshness.unchanged(tag):
        return freshness.not_modified(tag)
    form = HistoryFilterForm(request.args)
    filters = _history_filters(form)

    def history(template: str) -> str:
        page = history_page(session, account.id, filters, before_id=_before_id())
        context = {"form": form, "page": page, **_receipt_links(page)}
        return render_template(template, account=account, **context)

    if is_htmx():
        fragment = "billing/_history_rows.html" if _before_id() else "billing/_history.html"
        html = freshness.history_html(account.id, latest_id, fragment, lambda: history(fragment))
        status = 200
    else:
        history_part = "billing/_history.html"
        html, status = render(
            "billing/balance.html",
            "billing/_history.html",
            form=form,
            history_html=freshness.history_html(
                account.id, latest_id, history_part, lambda: history(history_part)
            ),
            chart_html=freshness.chart_html(session, account, latest_id),
            **summary,
        )
    return freshness.conditional(make_response(html, status), tag)


@bp.get("/balance/summary")
def balance_summary():
    """The live figures: the balance page polls this (HTMX) and gets 304 while unchanged.

    Without HTMX the same URL shows the balance page.
    """
    if not is_htmx():
        return balance()
    summary = _summary_context(current_account())
    tag = summary["summary_etag"]
    if freshness.unchanged(tag):
        return freshness.not_modified(tag)
    html = render_template("billing/_balance_summary.html", **summary)
    return freshness.conditional(make_response(html), tag)


@bp.get("/balance/add-credit")
def add_credit():
    """The Add-credit panel: the balance page loads it after it shows (HTMX); without
    HTMX, a page of its own. Never cached: each view holds a new idempotency key."""
    account = current_account()
    html, status = render(
        "billing/add_credit.html",
        "billing/_add_credit.html",
        account=account,
        **_add_credit_context(account),
    )
    return freshness.conditional(make_response(html, status), None)


@bp.post("/balance/topup")
def topup():
    """Add credit: charge the primary card for the chosen top-up product."""
    account = current_account()
    session = db.session()
    form = TopUpForm(products=service.topup_products(session, account=account))
    if not form.validate():
        return _topup_answer(account, form, error=" ".join(_errors(form)))
    try:
        payment = service.top_up(
            session,
            account=account,
            product_id=form.product_id_value() or 0,
            idempotency_key=form.idempotency_key.data,
        )
    except AuthenticationRequired as exc:
        payment_id = getattr(exc, "payment_id", None)
        if payment_id is None or not is_htmx():
            return _topup_answer(account, form, error=exc.message)
        return _authentication_widget(account, payment_id)
    except DomainError as exc:
        return _topup_answer(account, form, error=exc.message)
    return _topup_answer(account, form, message=service.describe_topup(payment))


def _authentication_widget(account, payment_id: int):
    """The bank wants the customer: Stripe.js finishes the payment here (3-D Secure)."""
    try:
        payment, secret = service.authentication_secret(
            db.session(), account=account, payment_id=payment_id
        )
    except DomainError as exc:
        return _topup_answer(account, None, error=exc.message)
    context = _add_credit_context(account, authenticate=payment, client_secret=secret)
    return render_template("billing/_add_credit.html", account=account, **context)


@bp.get("/payments/<int:payment_id>/authenticate")
def authenticate_payment(payment_id: int):
    """The link from the email: confirm a payment with the bank (3-D Secure), on-session."""
    account = current_account()
    try:
        payment, secret = service.authentication_secret(
            db.session(), account=account, payment_id=payment_id
        )
    except NotFound:
        abort(404)
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("billing.balance"), 303)
    return render_template(
        "billing/authenticate.html", account=account, authenticate=payment, client_secret=secret
    )


@bp.post("/payments/<int:payment_id>/authenticate")
def authenticate_payment_done(payment_id: int):
    """After Stripe.js: settle the payment from Stripe's own state (never from the browser)."""
    account = current_account()
    try:
        payment = service.finish_authentication(
            db.session(), account=account, payment_id=payment_id
        )
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _topup_answer(account, None, error=exc.message)
    if payment.invoice_id is not None:  # Pay now: back to the invoice with the outcome
        return _invoice_payment_answer(payment)
    if payment.paid:
        return _topup_answer(account, None, message=service.describe_topup(payment))
    if payment.status == PaymentStatus.REQUIRES_ACTION:
        return _topup_answer(
            account,
            None,
            error=_("Your bank has not confirmed the payment yet. No money was taken."),
        )
    return _topup_answer(
        account, None, error=payment.failure_message or "The payment failed. No money was taken."
    )


def _invoice_payment_answer(payment):
    if payment.paid:
        flash(invoice_payments.paid_with(payment), "success")
    elif payment.status == PaymentStatus.REQUIRES_ACTION:
        flash(_("Your bank has not confirmed the payment yet. No money was taken."), "error")
    else:
        flash(payment.failure_message or _("The payment failed. No money was taken."), "error")
    target = url_for("billing.invoice_detail", invoice_id=payment.invoice_id)
    if is_htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target, 303)


def _errors(form) -> list[str]:
    return [str(message) for messages in form.errors.values() for message in messages]


def _topup_answer(account, form: TopUpForm | None, *, error: str = "", message: str = ""):
    if not is_htmx():
        flash(error or message, "error" if error else "success")
        return redirect(url_for("billing.balance"), 303)
    context = _add_credit_context(account, None if message else form, error=error)
    html = render_template("billing/_add_credit.html", account=account, **context)
    if message:
        # The figures and the history changed: swap them out of band.
        session = db.session()
        session.refresh(account)
        history_form = HistoryFilterForm(formdata=None)
        page = history_page(session, account.id, HistoryFilter(), before_id=None)
        html += render_template(
            "billing/_balance_summary.html", oob=True, **_summary_context(account)
        )
        html += render_template(
            "billing/_history.html", oob=True, form=history_form, page=page, **_receipt_links(page)
        )
    html += render_template(
        "_toast.html", message=error or message, category="error" if error else "success"
    )
    return html
