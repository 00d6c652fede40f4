"""Billing views: change plan, plan license (with add-ons) and reserve credit."""

from __future__ import annotations

import re
import uuid

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField
from wtforms.validators import InputRequired, NumberRange

from portal import db, plans
from portal.billing import bp
from portal.billing.context import current_account
from portal.domain import DomainError, NotFound
from portal.i18n import _, _l, format_amount, format_day
from portal.ledger import available_funds
from portal.web import is_htmx, render

_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_ID_DIGITS = 18


# --- Helpers shared by the billing form views ----------------------------------------------


def new_request_id() -> str:
    """A fresh idempotency token for a form: a double submit of the same form posts once."""
    return uuid.uuid4().hex


def request_key(raw: str | None, prefix: str) -> str:
    """The form's idempotency key; a missing or odd token gets a fresh one (no replay)."""
    token = raw if raw and _REQUEST_ID.match(raw) else new_request_id()
    return f"{prefix}:{token}"


def parse_id(raw: str | None) -> int | None:
    """A positive database id from text, or None (never raises, never overflows)."""
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_ID_DIGITS or int(raw) == 0:
        return None
    return int(raw)


def status_for(code: int) -> int:
    """The status for a refusal: `code` for a full page, 200 for an HTMX fragment."""
    # htmx 2 does not swap 4xx answers: HTMX form errors come back as 200 fragments.
    return 200 if is_htmx() else code


def done(message: str, endpoint: str, fragment: str, **context):
    """After a successful change: HTMX gets the fragment and a toast; a browser is redirected."""
    if is_htmx():
        return render_template(fragment, success=message, toast=message, **context)
    flash(message, "success")
    return redirect(url_for(endpoint), code=303)


# --- Change plan -----------------------------------------------------------------------


def _plan_context(**extra) -> dict:
    account = current_account()
    session = db.session()
    return {
        "account": account,
        "plans": plans.list_plans(session, account),
        "subscription": plans.get_subscription(session, account),
        **extra,
    }


def _preview(plan_id: int | None) -> tuple[plans.PlanChangePreview | None, str | None, int]:
    if plan_id is None:
        return None, "Choose one of the plans.", 422
    try:
        account = current_account()
        preview = plans.preview_plan_change(db.session(), account=account, plan_id=plan_id)
    except NotFound as exc:
        return None, exc.message, 404
    except DomainError as exc:
        return None, exc.message, 422
    return preview, None, 200


@bp.get("/plan")
def plan():
    """Plans side by side; with ?plan_id the proration preview of changing to it."""
    if "plan_id" not in request.args:
        return render("billing/plan.html", "billing/_plan.html", **_plan_context())
    preview, error, code = _preview(parse_id(request.args.get("plan_id")))
    context = _plan_context(preview=preview, preview_error=error, request_id=new_request_id())
    return render("billing/plan.html", "billing/_plan_preview.html", status_for(code), **context)


@bp.post("/plan", endpoint="change_plan")
def change_plan():
    """Confirm a plan change previewed before."""
    plan_id = parse_id(request.form.get("plan_id"))
    if plan_id is None:
        return _plan_refused(None, "Choose one of the plans.")
    try:
        result = plans.change_plan(
            db.session(),
            account=current_account(),
            plan_id=plan_id,
            actor_user_id=current_user.id,
            idempotency_key=request_key(request.form.get("request_id"), "plan"),
            confirmed_terms=_confirmed_terms(),
        )
    except DomainError as exc:
        return _plan_refused(plan_id, exc.message)
    return done(_changed_message(result), "billing.plan", "billing/_plan.html", **_plan_context())


def _confirmed_terms() -> str | None:
    """The terms the preview showed (None from a client that sent no preview)."""
    terms = request.form.get("terms")
    return None if terms is None else terms[:100]


def _plan_refused(plan_id: int | None, message: str):
    preview = _preview(plan_id)[0] if plan_id else None
    context = _plan_context(preview=preview, preview_error=message, request_id=new_request_id())
    # The confirm form targets the whole plan area, so the refusal re-renders all of it.
    return render("billing/plan.html", "billing/_plan.html", status_for(422), **context)


def _changed_message(result: plans.PlanChangeResult) -> str:
    preview = result.preview
    text = _("You are now on %(plan)s.", plan=preview.new_plan.name)
    if preview.charge_minor:
        text += " " + _(
            "%(amount)s was charged to your balance (%(days)s).",
            amount=format_amount(preview.charge_minor, preview.currency),
            days=preview.days_shown,
        )
    if result.grant is not None:
        text += " " + _(
            "%(amount)s reserve credit was granted, usable for in-app purchases until %(date)s.",
            amount=format_amount(result.grant.amount_minor, preview.currency),
            date=format_day(result.grant.expires_at),
        )
    return text


# --- Plan license and add-ons ------------------------------------------------------------


class BuyAddonForm(FlaskForm):
    quantity = IntegerField(
        _l("Quantity"),
        default=1,
        validators=[
            InputRequired(_l("Enter a quantity.")),
            NumberRange(1, plans.MAX_ADDON_QUANTITY, "Enter a quantity from 1 to %(max)s."),
        ],
        render_kw={"inputmode": "numeric", "min": 1, "max": plans.MAX_ADDON_QUANTITY},
    )
    request_id = HiddenField()


def _addon_forms(posted: BuyAddonForm | None = None, posted_id: int | None = None) -> dict:
    account = current_account()
    forms = {}
    for addon in plans.list_addons(db.session(), account):
        if addon.id == posted_id and posted is not None:
            forms[addon.id] = posted
            continue
        form = BuyAddonForm(prefix=f"addon-{addon.id}", formdata=None)
        form.request_id.data = new_request_id()
        forms[addon.id] = form
    return forms


def _license_context(**extra) -> dict:
    account = current_account()
    session = db.session()
    return {
        "account": account,
        "subscription": plans.get_subscription(session, account),
        "rows": plans.license_rows(session, account),
        "addons": plans.list_addons(session, account),
        "reserve_minor": plans.usable_reserve_minor(session, account),
        "available_minor": available_funds(account),
        "forms": extra.pop("forms", None) or _addon_forms(),
        **extra,
    }


@bp.get("/license", endpoint="license")
def plan_license():
    """The plan license: Label, Limit, Used, Remaining, and add-ons to buy."""
    return render("billing/license.html", "billing/_license.html", **_license_context())


@bp.post("/license/addons/<int:addon_id>", endpoint="buy_addon")
def buy_addon(addon_id: int):
    """Buy units of an add-on; the limit rises at once."""
    form = BuyAddonForm(prefix=f"addon-{addon_id}")
    if not form.validate():
        return _license_refused(form, addon_id)
    try:
        purchase = plans.buy_addon(
            db.session(),
            account=current_account(),
            addon_id=addon_id,
            quantity=form.quantity.data,
            actor_user_id=current_user.id,
            idempotency_key=request_key(form.request_id.data, "addon"),
        )
    except NotFound:
        abort(404)
    except DomainError as exc:
        form.quantity.errors = [*form.quantity.errors, exc.message]
        return _license_refused(form, addon_id)
    return done(
        _bought_message(purchase), "billing.license", "billing/_license.html", **_license_context()
    )


def _license_refused(form: BuyAddonForm, addon_id: int):
    form.request_id.data = new_request_id()
    context = _license_context(forms=_addon_forms(form, addon_id), failed_addon_id=addon_id)
    return render("billing/license.html", "billing/_license.html", status_for(422), **context)


def _bought_message(purchase: plans.AddOnPurchase) -> str:
    currency = purchase.addon.currency
    return _(
        "Bought %(addon)s \u00d7 %(quantity)s for %(total)s: %(reserve)s from reserve credit,"
        " %(balance)s from your balance.",
        addon=purchase.addon.label,
        quantity=purchase.quantity,
        total=format_amount(purchase.total_minor, currency),
        reserve=format_amount(purchase.from_reserve_minor, currency),
        balance=format_amount(purchase.from_balance_minor, currency),
    )


# --- Reserve credit -------------------------------------------------------------------------


def _reserve_context(**extra) -> dict:
    account = current_account()
    session = db.session()
    return {
        "account": account,
        "grants": plans.list_reserve_grants(session, account),
        "reserve_minor": plans.usable_reserve_minor(session, account),
        "status_of": plans.grant_status,
        **extra,
    }


@bp.get("/reserve")
def reserve():
    """Reserve credit grants with their status; details expand by HTMX."""
    return render("billing/reserve.html", "billing/_reserve.html", **_reserve_context())


@bp.get("/reserve/<int:grant_id>", endpoint="reserve_details")
def reserve_details(grant_id: int):
    """How one grant was used and when it expired (the page with it expanded, without HTMX)."""
    try:
        grant = plans.get_reserve_grant(db.session(), current_account(), grant_id)
    except NotFound:
        abort(404)
    if is_htmx() and request.args.get("hide") == "1":
        return render_template("billing/_reserve_details_hidden.html", grant=grant)
    context = _reserve_context(open_grant_id=grant.id, grant=grant)
    return render("billing/reserve.html", "billing/_reserve_details.html", **context)
