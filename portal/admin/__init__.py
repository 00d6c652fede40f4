from flask import Blueprint

from portal.security import admin_required

bp = Blueprint("admin", __name__)


@bp.before_request
@admin_required
def require_admin():
    """Every /admin page is for reseller admins and the operator only."""


from portal.admin import routes  # noqa: E402,F401
