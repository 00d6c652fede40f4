"""Billing views: payment cards and top-up settings."""

from __future__ import annotations

import re

from flask import abort, flash, redirect, render_template, request, url_for

from portal import db
from portal.billing import bp
from portal.billing.context import current_account
from portal.domain import DomainError, NotFound
from portal.i18n import _
from portal.models import CardRole
from portal.money import format_plain
from portal.payments import recharge_settings, service
from portal.payments.forms import AddCardForm, TopupSettingsForm
from portal.web import is_htmx, render

# Card numbers go straight from the browser to Stripe. Anything that looks like card
# data arriving here is refused before it is parsed further, logged or stored.
GUARDED_ENDPOINTS = {
    "billing.cards",
    "billing.card_setup",
    "billing.card_add",
    "billing.card_role",
    "billing.card_delete",
    "billing.topup",
    "billing.topup_settings",
}
CARD_FIELD = re.compile(
    r"(^|[_\[\]-])(number|card_?number|cc_?num(ber)?|pan|cvc2?|cvv2?|security_?code)($|[_\[\]-])",
    re.IGNORECASE,
)
DIGITS = re.compile(r"^\d{13,19}$")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def looks_like_card_data(name: str, value: str) -> bool:
    """A field named like card data, or a value that is a plausible card number."""
    compact = re.sub(r"[\s-]", "", value or "")
    return bool(CARD_FIELD.search(name)) or (bool(DIGITS.match(compact)) and _luhn_valid(compact))


@bp.before_request
def refuse_card_numbers():
    """Refuse (400) any request to our card endpoints that carries card data."""
    if request.endpoint not in GUARDED_ENDPOINTS or request.method == "GET":
        return None
    fields = list(request.form.items(multi=True)) + list(request.args.items(multi=True))
    if any(looks_like_card_data(name, value) for name, value in fields):
        abort(400, description="Card details must be entered in the secure card form only.")
    return None


# --- Cards --------------------------------------------------------------------------


def _cards_context(**extra) -> dict:
    account = current_account()
    return {
        "account": account,
        "cards": service.list_cards(db.session(), account=account),
        "card_label": service.card_label,
        **extra,
    }


@bp.get("/cards")
def cards():
    """Payment cards: the list, and the Stripe.js form once "Add card" is pressed."""
    return render("billing/cards.html", "billing/_cards.html", **_cards_context())


@bp.post("/cards/setup")
def card_setup():
    """Start adding a card: a SetupIntent whose client secret Stripe.js confirms."""
    account = current_account()
    try:
        setup = service.start_card_setup(db.session(), account=account)
    except DomainError as exc:
        return render(
            "billing/cards.html", "billing/_card_form.html", **_cards_context(error=exc.message)
        )
    return render("billing/cards.html", "billing/_card_form.html", **_cards_context(setup=setup))


def _after_card_change(message: str, category: str = "success", **oob):
    if not is_htmx():
        flash(message, category)
        return redirect(url_for("billing.cards"), 303)
    html = render_template("billing/_cards.html", **_cards_context())
    html += render_template("_toast.html", message=message, category=category)
    if oob.get("close_form"):
        html += '<div id="card-setup" hx-swap-oob="true"></div>'
    return html


@bp.post("/cards/add")
def card_add():
    """Save the card Stripe.js just confirmed (we receive only the SetupIntent id)."""
    form = AddCardForm()
    if not form.validate():
        return _after_card_change(
            _("The card setup is missing. Please add the card again."), "error"
        )
    try:
        card = service.add_card_from_setup_intent(
            db.session(), account=current_account(), setup_intent_id=form.setup_intent_id.data
        )
    except service.CardAlreadyOnFile as exc:
        # Not an error of the customer's: the card is there, nothing was added.
        return _after_card_change(exc.message, "info", close_form=True)
    except DomainError as exc:
        return _after_card_change(exc.message, "error")
    return _after_card_change(
        _("Credit card successfully linked: %(card)s.", card=service.card_label(card)),
        close_form=True,
    )


@bp.post("/cards/<int:card_id>/role")
def card_role(card_id: int):
    """Make a card primary or secondary."""
    raw = request.form.get("role", "")
    if raw not in (CardRole.PRIMARY.value, CardRole.SECONDARY.value):
        return _after_card_change(_("Choose primary or secondary."), "error")
    role = CardRole(raw)
    try:
        card = service.set_card_role(
            db.session(), account=current_account(), card_id=card_id, role=role
        )
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _after_card_change(exc.message, "error")
    message = (
        _("%(card)s is now your primary card.", card=service.card_label(card))
        if role == CardRole.PRIMARY
        else _("%(card)s is now your secondary card.", card=service.card_label(card))
    )
    return _after_card_change(message)


@bp.post("/cards/<int:card_id>/delete")
def card_delete(card_id: int):
    """Delete a card (detached in Stripe); the secondary takes over from a deleted primary."""
    account = current_account()
    try:
        label = service.card_label(service.get_card(db.session(), account=account, card_id=card_id))
        service.delete_card(db.session(), account=account, card_id=card_id)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _after_card_change(exc.message, "error")
    return _after_card_change(_("Card deleted: %(card)s.", card=label))


# --- Top-up settings ----------------------------------------------------------------


def _settings_form(account, setting=None) -> TopupSettingsForm:
    if request.method == "POST":
        return TopupSettingsForm(currency=account.currency)
    return TopupSettingsForm(
        currency=account.currency,
        data={
            "enabled": setting.enabled,
            "threshold": format_plain(setting.threshold_minor, account.currency),
            "amount": format_plain(setting.amount_minor, account.currency),
        },
    )


def _settings_page(form: TopupSettingsForm, status: int = 200, saved: bool = False):
    account, session = current_account(), db.session()
    context = {
        "account": account,
        "form": form,
        "limits": recharge_settings.limits_for(account.currency),
        "attempts": recharge_settings.recent_attempts(session, account=account),
        "has_primary": service.card_with_role(session, account=account, role=CardRole.PRIMARY)
        is not None,
        "saved": saved,
    }
    return render("billing/topup_settings.html", "billing/_topup_settings.html", status, **context)


@bp.route("/topup-settings", methods=["GET", "POST"])
def topup_settings():
    """Automatic top-up: on/off, the threshold and the amount."""
    account = current_account()
    setting = recharge_settings.current_settings(db.session(), account=account)
    form = _settings_form(account, setting)
    if request.method == "GET":
        return _settings_page(form)
    if form.validate():
        try:
            recharge_settings.save_auto_recharge_settings(
                db.session(),
                account=account,
                enabled=form.enabled.data,
                threshold_minor=form.threshold.minor,
                amount_minor=form.amount.minor,
            )
            return _settings_page(form, saved=True)
        except DomainError as exc:
            form.add_error(exc.field, exc.message)
    # HTMX only swaps 2xx answers: errors come back as 200 to the fragment, 422 to the page.
    return _settings_page(form, 200 if is_htmx() else 422)
