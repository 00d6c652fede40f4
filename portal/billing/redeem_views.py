"""Billing views: redeem a top-up card (voucher) PIN."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from portal import db, vouchers
from portal.billing import bp
from portal.billing.context import current_account
from portal.billing.plans_views import status_for
from portal.domain import DomainError, PermissionDenied
from portal.extensions import client_address
from portal.i18n import _, _l, format_amount
from portal.web import is_htmx, render


class RedeemForm(FlaskForm):
    pin = StringField(
        _l("PIN"),
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[DataRequired(_l("Enter the PIN printed on the card.")), Length(max=64)],
        render_kw={"inputmode": "numeric", "autocomplete": "off", "spellcheck": "false"},
    )


def _page(form: RedeemForm, status: int = 200, headers: dict | None = None, **extra):
    body, code = render(
        "billing/redeem.html",
        "billing/_redeem.html",
        status,
        form=form,
        account=current_account(),
        **extra,
    )
    return body, code, headers or {}


@bp.route("/redeem", methods=["GET", "POST"])
def redeem():
    """Redeem voucher: the card's amount is added to the balance."""
    if not current_user.can_redeem_vouchers:
        abort(403)
    form = RedeemForm()
    if not form.validate_on_submit():
        return _page(form, status_for(422) if form.is_submitted() else 200)
    try:
        redemption = vouchers.redeem_voucher(
            db.session(),
            user=current_user._get_current_object(),
            account=current_account(),
            pin=form.pin.data,
            client_ip=client_address(),
        )
    except vouchers.RedeemLocked as exc:
        return _refused(form, exc.message, status_for(429), {"Retry-After": str(exc.retry_after)})
    except PermissionDenied:
        abort(403)
    except DomainError as exc:
        return _refused(form, exc.message, status_for(422))
    return _redeemed(redemption)


def _refused(form: RedeemForm, message: str, status: int, headers: dict | None = None):
    # A PIN that did not work is not written back into the page: it may be a guess at
    # someone else's card, and pages end up in caches, screenshots and shoulder views.
    form.pin.data = ""
    form.pin.raw_data = []
    form.pin.errors = [message]
    return _page(form, status, headers)


def _redeemed(redemption: vouchers.Redemption):
    message = _(
        "%(added)s added to your balance. Your new balance is %(balance)s.",
        added=format_amount(redemption.amount_minor, redemption.currency),
        balance=format_amount(redemption.balance_after_minor, redemption.currency),
    )
    if not is_htmx():
        flash(message, "success")
        return redirect(url_for("billing.redeem"), code=303)
    return render_template(
        "billing/_redeem.html",
        form=RedeemForm(formdata=None),
        account=current_account(),
        redemption=redemption,
        success=message,
        toast=message,
    )
