from flask import Blueprint
from flask_login import current_user

from portal.security import customer_required

bp = Blueprint("billing", __name__)


@bp.before_request
@customer_required
def require_customer():
    """Every /billing page is for customer users only."""
    if current_user.account_id is None:
        from flask import abort

        abort(403)


# One module per area of the billing pages.
from portal.billing import (  # noqa: E402,F401
    cards_views,
    documents_views,
    invoices_views,
    plans_views,
    redeem_views,
    routes,
    transfers_views,
)
