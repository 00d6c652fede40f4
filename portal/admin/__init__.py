from flask import Blueprint

from portal.security import admin_required

bp = Blueprint("admin", __name__)


@bp.before_request
@admin_required
def require_admin():
    """Every /admin page is for reseller admins and the operator only."""


# One module per area of the admin pages.
from portal.admin import (  # noqa: E402,F401
    api_views,
    audit_views,
    billing_views,
    card_codes_views,
    catalogue_views,
    customers_views,
    outbox_views,
    payments_views,
    routes,
    topup_cards_views,
    users_views,
)
