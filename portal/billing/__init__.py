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


from portal.billing import routes  # noqa: E402,F401
