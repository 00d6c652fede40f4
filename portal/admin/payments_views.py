"""Admin: card payments of the admin's customers, their refunds and disputes; Refund."""

from __future__ import annotations

import uuid

from flask import abort, request
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import or_, select
from wtforms import HiddenField, StringField
from wtforms.validators import InputRequired, Length, Optional, Regexp

from portal import db
from portal.admin import bp
from portal.domain import DomainError
from portal.forms import MoneyField
from portal.i18n import _, _l
from portal.models import Account, Payment, PaymentDispute, PaymentStatus
from portal.money import format_money
from portal.payments import refunds
from portal.security import scope_to_tenant
from portal.web import render

PAGE = 50


class RefundForm(FlaskForm):
    amount = MoneyField(_l("Amount to refund"), validators=[Optional()])
    reason = StringField(_l("Reason"), validators=[InputRequired(), Length(max=200)])
    # A fresh key per rendered form: a double submit never refunds twice.
    idempotency_key = HiddenField(
        default=lambda: uuid.uuid4().hex,
        validators=[InputRequired(), Regexp(r"^[A-Za-z0-9_-]{8,64}$")],
    )

    def __init__(self, currency: str, **kwargs):
        self.currency = currency
        super().__init__(**kwargs)


def _scoped_payments():
    stmt = select(Payment, Account).join(Account, Account.id == Payment.account_id)
    return scope_to_tenant(stmt, Account)


def _search(q: str, status: str):
    stmt = _scoped_payments()
    if status in {s.value for s in PaymentStatus}:
        stmt = stmt.where(Payment.status == PaymentStatus(status))
    q = q.strip()[:80]
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        matches = [
            Account.number == q,
            Account.name.ilike(like),
            Payment.stripe_payment_intent_id == q,
            Payment.stripe_charge_id == q,
        ]
        if q.isdigit() and len(q) < 19:
            matches.append(Payment.id == int(q))
        stmt = stmt.where(or_(*matches))
    return stmt.order_by(Payment.id.desc()).limit(PAGE)


@bp.get("/payments")
def payments():
    """Search payments by account, name, payment id or Stripe id; filter by status."""
    q = request.args.get("q", "")[:80]
    status = request.args.get("status", "")
    if status not in {s.value for s in PaymentStatus}:
        status = ""
    rows = db.session().execute(_search(q, status)).all()
    return render(
        "admin/payments/list.html",
        "admin/payments/_results.html",
        rows=rows,
        q=q,
        current_status=status,
        statuses=list(PaymentStatus),
    )


def _load(payment_id: int) -> tuple[Payment, Account]:
    row = db.session().execute(_scoped_payments().where(Payment.id == payment_id)).first()
    if row is None:
        abort(404)  # another tenant's payment does not exist for this admin
    return row[0], row[1]


def _detail(payment: Payment, account: Account, form: RefundForm | None = None, **extra):
    session = db.session()
    disputes = session.scalars(
        select(PaymentDispute)
        .where(PaymentDispute.payment_id == payment.id)
        .order_by(PaymentDispute.id)
    ).all()
    if form is None or extra.get("message"):
        form = RefundForm(account.currency, formdata=None)
    return render(
        "admin/payments/detail.html",
        "admin/payments/_detail.html",
        payment=payment,
        account=account,
        refunds=refunds.refunds_of(session, payment),
        disputes=disputes,
        refundable=refunds.refundable_minor(session, payment),
        form=form,
        **extra,
    )


@bp.get("/payments/<int:payment_id>")
def payment(payment_id: int):
    """One payment: status, Stripe ids, refunds, disputes and the Refund form."""
    payment, account = _load(payment_id)
    return _detail(payment, account)


@bp.post("/payments/<int:payment_id>/refund")
def payment_refund(payment_id: int):
    """Refund all or part of a payment, with a reason (idempotent per form, audited)."""
    payment, account = _load(payment_id)
    form = RefundForm(account.currency)
    if not form.validate():
        return _detail(payment, account, form, error=_("Please correct the form."))
    amount = form.amount.minor if (form.amount.data or "").strip() else None
    try:
        refund = refunds.refund_payment(
            db.session(),
            payment=payment,
            amount_minor=amount,
            reason=form.reason.data,
            actor=current_user,
            idempotency_key=form.idempotency_key.data,
        )
    except DomainError as exc:
        if exc.field and exc.field in form:
            form[exc.field].errors = [*form[exc.field].errors, exc.message]
        return _detail(payment, account, form, error=exc.message)
    db.session().refresh(payment)
    message = f"Refund of {format_money(refund.amount_minor, payment.currency)} sent to Stripe."
    return _detail(payment, account, message=message)
