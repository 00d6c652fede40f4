"""Billing views: transfer funds to another account of the same reseller."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from portal import db, transfers
from portal.billing import bp
from portal.billing.context import current_account
from portal.billing.plans_views import new_request_id, request_key, status_for
from portal.domain import DomainError
from portal.forms import MoneyField
from portal.i18n import _, _l, format_amount
from portal.ledger import available_funds
from portal.web import is_htmx, render


class TransferForm(FlaskForm):
    recipient = StringField(
        _l("Recipient account"),
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            DataRequired(_l("Enter the recipient's account number.")),
            Length(max=transfers.NUMBER_MAX_LENGTH, message=_l("That is not an account number.")),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    amount = MoneyField(_l("Amount"))
    request_id = HiddenField()
    # Set by the review step's Send button: without it the form only shows the review.
    confirmed = HiddenField()

    def __init__(self, *args, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency  # MoneyField parses with the account's currency


def _page(form: TransferForm, status: int = 200, **extra):
    account = current_account()
    form.request_id.data = new_request_id()
    return render(
        "billing/transfer.html",
        "billing/_transfer.html",
        status,
        form=form,
        account=account,
        available_minor=available_funds(account),
        **extra,
    )


@bp.route("/transfer", methods=["GET", "POST"])
def transfer():
    """Transfer funds: both ledger entries in one transaction, or none."""
    account = current_account()
    form = TransferForm(currency=account.currency)
    if not form.validate_on_submit():
        return _page(form, status_for(422) if form.is_submitted() else 200)
    if form.confirmed.data != "yes" or request.form.get("change"):
        return _review(form, account)
    try:
        result = transfers.transfer_funds(
            db.session(),
            sender_account=account,
            recipient_number=form.recipient.data,
            amount_minor=form.amount.minor,
            actor_user_id=current_user.id,
            idempotency_key=request_key(form.request_id.data, "transfer"),
        )
    except DomainError as exc:
        target = getattr(form, exc.field or "", None) or form.amount
        target.errors = [*target.errors, exc.message]
        return _page(form, status_for(422))
    return _transferred(result)


def _review(form: TransferForm, account):
    """Step one: both accounts and the amount, with Send and Change; nothing moves yet."""
    if request.form.get("change"):
        return _page(form)
    if not form.request_id.data:
        form.request_id.data = new_request_id()
    try:
        review = transfers.review_transfer(
            db.session(),
            sender_account=account,
            recipient_number=form.recipient.data,
            amount_minor=form.amount.minor,
        )
    except DomainError as exc:
        target = getattr(form, exc.field or "", None) or form.amount
        target.errors = [*target.errors, exc.message]
        return _page(form, status_for(422))
    return render(
        "billing/transfer.html",
        "billing/_transfer.html",
        200,
        form=form,
        account=account,
        available_minor=available_funds(account),
        review=review,
    )


def _transferred(result: transfers.Transfer):
    message = _(
        "%(amount)s sent to account %(number)s (%(name)s). Your balance is now %(balance)s.",
        amount=format_amount(result.amount_minor, result.currency),
        number=result.recipient_number,
        name=result.recipient_name,
        balance=format_amount(result.sender_balance_after_minor, result.currency),
    )
    if not is_htmx():
        flash(message, "success")
        return redirect(url_for("billing.transfer"), code=303)
    account = current_account()
    form = TransferForm(formdata=None, currency=account.currency)
    form.request_id.data = new_request_id()
    return render_template(
        "billing/_transfer.html",
        form=form,
        account=account,
        available_minor=available_funds(account),
        success=message,
        toast=message,
    )
