"""Jinja filters and the navigation for each role."""

from __future__ import annotations

from flask import Flask, current_app, g, request, url_for
from flask_login import current_user

from portal.money import format_money, format_plain

CUSTOMER_NAV = [
    ("billing.home", "Home"),
    ("billing.balance", "Account balance"),
    ("billing.plan", "Change plan"),
    ("billing.license", "Plan license"),
    ("billing.topup_settings", "Top-up settings"),
    ("billing.cards", "Payment cards"),
    ("billing.reserve", "Reserve credit"),
    ("billing.redeem", "Redeem voucher"),
    ("billing.transfer", "Transfer funds"),
    ("billing.invoices", "Invoices"),
    ("billing.receipts", "Receipts"),
    ("billing.notices", "Notices"),
]
ADMIN_NAV = [
    ("admin.index", "Overview"),
    ("admin.customers", "Customers"),
    ("admin.billing", "Billing"),
    ("admin.users", "Users"),
    ("admin.topup_cards", "Top-up cards"),
    ("admin.card_codes", "Card codes"),
    ("admin.payments", "Payments"),
    ("admin.customer_classes", "Customer classes"),
    ("admin.audit_log", "Audit log"),
    ("admin.api_tokens", "API tokens"),
    ("admin.outbox", "Outbox"),
]
OPERATOR_NAV = [
    ("admin.resellers", "Resellers"),
    ("admin.plans", "Plans"),
    ("admin.addons", "Add-ons"),
    ("admin.topup_products", "Top-up products"),
    ("admin.settings", "Settings"),
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
    "money": format_money,
    "money_plain": format_plain,
    "datetime": lambda d: d.strftime("%d %b %Y %H:%M") if d else "",
    "date": lambda d: d.strftime("%d %b %Y") if d else "",
}


def init_app(app: Flask) -> None:
    app.jinja_env.globals["url_with"] = url_with
    app.jinja_env.filters.update(FILTERS)

    @app.context_processor
    def inject_navigation():
        return {"navigation": navigation(), "htmx_version": "2.0.11"}
