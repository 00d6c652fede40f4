"""Admin views: customers (list, create, edit, users) and their Balance & Credits tab."""

from __future__ import annotations

from datetime import UTC

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from portal import credit, customers, db
from portal.admin import bp
from portal.admin.customer_forms import (
    CustomerEditForm,
    CustomerForm,
    CustomerSearchForm,
    CustomerUserEditForm,
    CustomerUserForm,
    ManualPaymentForm,
    PermanentLimitForm,
    TemporaryIncreaseForm,
    ThresholdsForm,
    TransfersForm,
)
from portal.domain import DomainError
from portal.forms import choices
from portal.i18n import _
from portal.ledger import available_funds, effective_credit_limit, temporary_increase_minor
from portal.models import Account, BillingModel, CustomerClass, Reseller, TransferSetting, User
from portal.money import format_plain
from portal.security import get_scoped_or_404, tenant_select
from portal.web import is_htmx, render


def _actor() -> User:
    return current_user._get_current_object()


def _attach_error(form, exc: DomainError) -> None:
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


def _int_or_none(value) -> int | None:
    return int(value) if value and str(value).isdigit() and len(str(value)) < 10 else None


def _reseller_choices() -> list:
    resellers = db.session().scalars(tenant_select_resellers().order_by(Reseller.name))
    return choices([(r.id, r.name) for r in resellers])


def tenant_select_resellers():
    """Resellers have no reseller_id: the operator sees all, an admin only their own."""
    stmt = select(Reseller)
    if not current_user.is_operator:
        stmt = stmt.where(Reseller.id == current_user.reseller_id)
    return stmt


def _class_choices(reseller_id: int | None = None) -> list:
    stmt = tenant_select(CustomerClass).order_by(CustomerClass.name)
    if reseller_id is not None:
        stmt = stmt.where(CustomerClass.reseller_id == reseller_id)
    classes = db.session().scalars(stmt)
    return choices([("", _("None"))] + [(c.id, _class_label(c)) for c in classes])


def _class_label(klass: CustomerClass) -> str:
    return f"{klass.name} ({klass.reseller.name})" if current_user.is_operator else klass.name


# --- List and search -----------------------------------------------------------------------


@bp.get("/customers", endpoint="customers")
def customers_list():
    """Customer accounts with search (name, number, email); HTMX swaps only the results."""
    form = CustomerSearchForm(request.args)
    form.reseller.choices = choices([("", _("All resellers"))] + _reseller_pairs())
    form.validate()
    page = max(1, _int_or_none(request.args.get("page")) or 1)
    rows, more = customers.search_customers(
        db.session(),
        scoped=tenant_select(Account),
        text=form.q.data if not form.q.errors else "",
        reseller_id=_int_or_none(form.reseller.data) if current_user.is_operator else None,
        page=page,
    )
    return render(
        "admin/customers/list.html",
        "admin/customers/_results.html",
        form=form,
        rows=rows,
        page=page,
        more=more,
    )


def _reseller_pairs() -> list[tuple[int, str]]:
    return [(r.id, r.name) for r in db.session().scalars(tenant_select_resellers())]


# --- Create / edit account ---------------------------------------------------------------


@bp.route("/customers/new", methods=["GET", "POST"])
def customer_new():
    """Create a customer account."""
    form = CustomerForm()
    form.reseller_id.choices = _reseller_choices()
    form.customer_class_id.choices = _class_choices()
    if form.validate_on_submit():
        reseller = db.session().scalar(
            tenant_select_resellers().where(Reseller.id == _int_or_none(form.reseller_id.data))
        )
        if reseller is None:
            abort(404)
        try:
            account = customers.create_customer(
                db.session(),
                reseller=reseller,
                actor=_actor(),
                number=form.number.data,
                name=form.name.data,
                email=form.email.data or "",
                currency=form.currency_code.data,
                billing_model=BillingModel(form.billing_model.data),
                customer_class_id=_int_or_none(form.customer_class_id.data),
                credit_limit_minor=form.credit_limit.minor or 0,
            )
        except DomainError as exc:
            db.session().rollback()
            _attach_error(form, exc)
        else:
            flash(_("Customer %(name)s created.", name=account.name), "success")
            return redirect(url_for("admin.customer", customer_id=account.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("admin/customers/form.html", form=form, account=None), status


@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
def customer_edit(customer_id: int):
    """Edit a customer's name, email, status and class."""
    account = get_scoped_or_404(Account, customer_id)
    form = CustomerEditForm(obj=None if request.method == "POST" else account)
    if request.method == "GET":
        form.status.data = account.status.value
        form.customer_class_id.data = str(account.customer_class_id or "")
    form.customer_class_id.choices = _class_choices(account.reseller_id)
    if form.validate_on_submit():
        try:
            customers.update_customer(
                db.session(),
                account=account,
                actor=_actor(),
                name=form.name.data,
                email=form.email.data or "",
                status=form.status.data,
                customer_class_id=_int_or_none(form.customer_class_id.data),
            )
        except DomainError as exc:
            db.session().rollback()
            _attach_error(form, exc)
        else:
            flash(_("Customer saved."), "success")
            return redirect(url_for("admin.customer", customer_id=account.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("admin/customers/form.html", form=form, account=account), status


@bp.get("/customers/<int:customer_id>")
def customer(customer_id: int):
    """Customer details: figures, plan and the users who sign in to the account."""
    account = get_scoped_or_404(Account, customer_id)
    session = db.session()
    return render_template(
        "admin/customers/detail.html",
        account=account,
        tab="details",
        plan=customers.account_plan(session, account),
        users=customers.account_users(session, account),
        **_figures(account),
    )


def _figures(account: Account) -> dict:
    return {"available": available_funds(account), "credit_limit": effective_credit_limit(account)}


# --- Users of the account --------------------------------------------------------------------


@bp.route("/customers/<int:customer_id>/users/new", methods=["GET", "POST"])
def customer_user_new(customer_id: int):
    """Add a user to a customer account."""
    account = get_scoped_or_404(Account, customer_id)
    form = CustomerUserForm()
    if form.validate_on_submit():
        try:
            customers.create_customer_user(
                db.session(),
                account=account,
                actor=_actor(),
                email=form.email.data,
                name=form.name.data or "",
                password=form.password.data,
                can_redeem_vouchers=form.can_redeem_vouchers.data,
            )
        except DomainError as exc:
            db.session().rollback()
            _attach_error(form, exc)
        else:
            flash(_("User added."), "success")
            return redirect(url_for("admin.customer", customer_id=account.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template(
        "admin/customers/user_form.html", form=form, account=account, user=None
    ), status


@bp.route("/customers/<int:customer_id>/users/<int:user_id>", methods=["GET", "POST"])
def customer_user_edit(customer_id: int, user_id: int):
    """Edit a customer user (name, password, redeem vouchers permission, active)."""
    account = get_scoped_or_404(Account, customer_id)
    user = get_scoped_or_404(User, user_id)
    if user.account_id != account.id:
        abort(404)
    form = CustomerUserEditForm(obj=None if request.method == "POST" else user)
    if form.validate_on_submit():
        try:
            customers.update_customer_user(
                db.session(),
                user=user,
                actor=_actor(),
                name=form.name.data or "",
                can_redeem_vouchers=form.can_redeem_vouchers.data,
                active=form.active.data,
                password=form.password.data or "",
            )
        except DomainError as exc:
            db.session().rollback()
            _attach_error(form, exc)
        else:
            flash(_("User saved."), "success")
            return redirect(url_for("admin.customer", customer_id=account.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template(
        "admin/customers/user_form.html", form=form, account=account, user=user
    ), status


# --- Balance & Credits tab ------------------------------------------------------------------


def _balance_forms(account: Account, given: dict) -> dict:
    forms = {
        "limit_form": PermanentLimitForm(
            formdata=None, credit_limit=format_plain(account.credit_limit_minor, account.currency)
        ),
        "increase_form": TemporaryIncreaseForm(formdata=None),
        "thresholds_form": ThresholdsForm(
            formdata=None, thresholds=account.warning_thresholds or ""
        ),
        "transfers_form": TransfersForm(formdata=None, transfers=account.transfers.value),
        "payment_form": ManualPaymentForm(formdata=None),
    }
    forms.update(given)
    for form in forms.values():
        form.currency = account.currency
    forms["thresholds_form"].thresholds.label.text = credit.threshold_label(account.billing_model)
    return forms


def _balance_context(account: Account, **given) -> dict:
    session = db.session()
    total, unallocated = credit.unallocated_payments(session, account)
    return {
        "account": account,
        "tab": "balance",
        "postpaid": account.billing_model == BillingModel.POSTPAID,
        "maximum_prompt": credit.maximum_prompt(account),
        "increase_minor": temporary_increase_minor(account),
        "class_thresholds": (
            account.customer_class.default_warning_thresholds if account.customer_class else ""
        ),
        "transfers_now": _("Yes") if credit.transfers_resolved(account) else _("No"),
        "unallocated_total": total,
        "unallocated": unallocated,
        "history": credit.credit_history(session, account),
        **_figures(account),
        **_balance_forms(account, given),
    }


@bp.get("/customers/<int:customer_id>/balance")
def customer_balance(customer_id: int):
    """The Balance & Credits tab."""
    account = get_scoped_or_404(Account, customer_id)
    return render(
        "admin/customers/balance.html",
        "admin/customers/_balance.html",
        **_balance_context(account),
    )


def _balance_changed(account: Account, message: str):
    if is_htmx():
        db.session().refresh(account)
        html = render_template(
            "admin/customers/_balance.html", **_balance_context(account)
        ) + render_template("_toast.html", message=message, category="success")
        return html, 200
    flash(message, "success")
    return redirect(url_for("admin.customer_balance", customer_id=account.id), 303)


def _balance_refused(customer_id: int, form_name: str, form, exc: DomainError | None = None):
    db.session().rollback()
    account = get_scoped_or_404(Account, customer_id)
    form.currency = account.currency
    if exc is not None:
        _attach_error(form, exc)
    # htmx 2 does not swap 4xx answers: HTMX gets 200 with the errors shown.
    status = 200 if is_htmx() else 422
    return render(
        "admin/customers/balance.html",
        "admin/customers/_balance.html",
        status=status,
        **_balance_context(account, **{form_name: form}),
    )


def _balance_action(customer_id: int, form_name: str, form_class, action):
    """Validate the tab's form, run one domain operation, answer with the refreshed tab."""
    account = get_scoped_or_404(Account, customer_id)
    form = form_class()
    form.currency = account.currency
    if not form.validate_on_submit():
        return _balance_refused(customer_id, form_name, form)
    try:
        message = action(account, form)
    except DomainError as exc:
        return _balance_refused(customer_id, form_name, form, exc)
    return _balance_changed(account, message)


@bp.post("/customers/<int:customer_id>/balance/credit-limit")
def customer_credit_limit(customer_id: int):
    """Set the Permanent Credit Limit."""

    def action(account, form):
        credit.set_permanent_limit(
            db.session(), account=account, limit_minor=form.credit_limit.minor, actor=_actor()
        )
        return "Permanent Credit Limit saved."

    return _balance_action(customer_id, "limit_form", PermanentLimitForm, action)


@bp.post("/customers/<int:customer_id>/balance/temporary-increase")
def customer_temporary_increase(customer_id: int):
    """Set (replace) the Temporary Credit Limit Increase."""

    def action(account, form):
        amount, percent = credit.parse_increase(form.increase.data, account.currency)
        credit.set_temporary_increase(
            db.session(),
            account=account,
            amount_minor=amount,
            percent=percent,
            # The form's time is UTC (the label says so).
            valid_until=form.valid_until.data.replace(tzinfo=UTC),
            actor=_actor(),
        )
        return "Temporary Credit Limit Increase saved."

    return _balance_action(customer_id, "increase_form", TemporaryIncreaseForm, action)


@bp.post("/customers/<int:customer_id>/balance/temporary-increase/remove")
def customer_remove_increase(customer_id: int):
    """End the temporary increase now."""
    account = get_scoped_or_404(Account, customer_id)
    try:
        credit.remove_temporary_increase(db.session(), account=account, actor=_actor())
    except DomainError as exc:
        form = TemporaryIncreaseForm(formdata=None)
        return _balance_refused(customer_id, "increase_form", form, exc)
    return _balance_changed(account, "Temporary Credit Limit Increase removed.")


@bp.post("/customers/<int:customer_id>/balance/thresholds")
def customer_thresholds(customer_id: int):
    """Set the Low Funds / Credit Limit Warning Threshold list."""

    def action(account, form):
        credit.set_warning_thresholds(
            db.session(), account=account, text=form.thresholds.data or "", actor=_actor()
        )
        return f"{credit.threshold_label(account.billing_model)} saved."

    return _balance_action(customer_id, "thresholds_form", ThresholdsForm, action)


@bp.post("/customers/<int:customer_id>/balance/transfers")
def customer_transfers(customer_id: int):
    """Set Subscriber-to-Subscriber transfers allowed."""

    def action(account, form):
        credit.set_transfer_setting(
            db.session(),
            account=account,
            setting=TransferSetting(form.transfers.data),
            actor=_actor(),
        )
        return "Subscriber-to-Subscriber transfers setting saved."

    return _balance_action(customer_id, "transfers_form", TransfersForm, action)


@bp.post("/customers/<int:customer_id>/balance/payment")
def customer_payment(customer_id: int):
    """Record a manual payment or a balance adjustment (through the ledger)."""

    def action(account, form):
        operation = (
            credit.record_manual_payment if form.kind.data == "payment" else credit.adjust_balance
        )
        operation(
            db.session(),
            account=account,
            amount_minor=form.amount.minor,
            order_number=form.order_number.data or "",
            reason=form.reason.data or "",
            actor=_actor(),
            idempotency_key=form.idempotency_key.data,
        )
        return "Payment recorded." if form.kind.data == "payment" else "Adjustment recorded."

    return _balance_action(customer_id, "payment_form", ManualPaymentForm, action)
