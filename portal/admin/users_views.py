"""Admin view: the users of this admin's reseller (all for the operator), with their last
sign-in and two-factor state; deactivate or reactivate one."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_
from sqlalchemy.orm import selectinload

from portal import db
from portal.admin import bp
from portal.auth import users_admin
from portal.domain import DomainError
from portal.i18n import _
from portal.models import User
from portal.security import get_scoped_or_404, tenant_select
from portal.web import render

PAGE = 200


@bp.get("/users")
def users():
    """Users of the tenant, searchable by email or name; HTMX swaps only the table."""
    q = request.args.get("q", "").strip()[:100]
    stmt = (
        tenant_select(User)
        .options(selectinload(User.account))
        .order_by(func.lower(User.email))
        .limit(PAGE)
    )
    if q:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        stmt = stmt.where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    rows = db.session().scalars(stmt).all()
    return render("admin/users.html", "admin/_users_table.html", users=rows, q=q)


@bp.post("/users/<int:user_id>/active")
def user_set_active(user_id: int):
    """Deactivate (signing out every session) or reactivate a user of this tenant."""
    user = get_scoped_or_404(User, user_id)
    wanted = request.form.get("active", "")
    if wanted not in ("0", "1"):
        abort(400)
    try:
        users_admin.set_active(
            db.session(), actor=current_user._get_current_object(), user=user, active=wanted == "1"
        )
    except DomainError as exc:
        db.session().rollback()
        flash(exc.message, "error")
    else:
        flash(
            _("%(email)s is active.", email=user.email)
            if user.active
            else _("%(email)s is deactivated.", email=user.email),
            "success",
        )
    return redirect(url_for("admin.users"), 303)
