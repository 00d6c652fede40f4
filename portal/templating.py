"""Jinja filters and the navigation for each role."""

from __future__ import annotations

from flask import Flask, current_app, g, request, url_for
from flask_login import current_user

from portal.i18n import (
    LANGUAGES,
    _l,
    current_language,
    format_amount,
    format_day,
    format_moment,
    format_number,
    label,
    plain_gettext,
    plain_ngettext,
)
from portal.money import format_plain

CUSTOMER_NAV = [
    ("billing.home", _l("Home")),
    ("billing.balance", _l("Account balance")),
    ("billing.plan", _l("Change plan")),
    ("billing.license", _l("Plan license")),
    ("billing.topup_settings", _l("Top-up settings")),
    ("billing.cards", _l("Payment cards")),
    ("billing.reserve", _l("Reserve credit")),
    ("billing.redeem", _l("Redeem voucher")),
    ("billing.transfer", _l("Transfer funds")),
    ("billing.invoices", _l("Invoices")),
    ("billing.receipts", _l("Receipts")),
    ("billing.notices", _l("Notices")),
]
ADMIN_NAV = [
    ("admin.index", _l("Overview")),
    ("admin.customers", _l("Customers")),
    ("admin.billing", _l("Billing")),
    ("admin.users", _l("Users")),
    ("admin.topup_cards", _l("Top-up cards")),
    ("admin.card_codes", _l("Card codes")),
    ("admin.payments", _l("Payments")),
    ("admin.customer_classes", _l("Customer classes")),
    ("admin.audit_log", _l("Audit log")),
    ("admin.api_tokens", _l("API tokens")),
    ("admin.outbox", _l("Outbox")),
]
OPERATOR_NAV = [
    ("admin.resellers", _l("Resellers")),
    ("admin.plans", _l("Plans")),
    ("admin.addons", _l("Add-ons")),
    ("admin.topup_products", _l("Top-up products")),
    ("admin.settings", _l("Settings")),
]


def navigation() -> list[tuple[str, str]]:
    if g.get("database_down") or not current_user.is_authenticated:
        return []
    if current_user.is_operator:
        items = ADMIN_NAV + OPERATOR_NAV
    elif current_user.is_admin:
        items = ADMIN_NAV
    else:
        items = CUSTOMER_NAV
    # Only pages that exist in this build are listed.
    return [item for item in items if item[0] in current_app.view_functions]


def url_with(endpoint: str, **overrides) -> str:
    """The URL of `endpoint` with the current query string, some values replaced."""
    params = request.args.to_dict()
    params.update({k: v for k, v in overrides.items() if v is not None})
    return url_for(endpoint, **params)


# Shared with the app-less environment that renders documents and emails (portal.documents).
FILTERS = {
    "money": format_amount,
    "money_plain": format_plain,
    "datetime": format_moment,
    "date": format_day,
    "number": format_number,
    "label": label,
}
# The same `_`/`ngettext` for that environment: the request's language, else English (or the
# language set with portal.i18n.rendering_in).
GETTEXT = {"gettext": plain_gettext, "ngettext": plain_ngettext}


def init_app(app: Flask) -> None:
    app.jinja_env.globals["url_with"] = url_with
    app.jinja_env.filters.update(FILTERS)

    @app.context_processor
    def inject_navigation():
        return {
            "navigation": navigation(),
            "htmx_version": "2.0.11",
            "languages": LANGUAGES,
            "current_language": current_language(),
        }
