"""Roles, tenant scoping and security headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, request
from flask_login import current_user
from sqlalchemy import Select, select

from portal import db
from portal.models import Role

F = TypeVar("F", bound=Callable[..., Any])


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Only signed-in users with one of `roles` get in; others get 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


admin_required = roles_required(Role.RESELLER_ADMIN, Role.OPERATOR)
operator_required = roles_required(Role.OPERATOR)
customer_required = roles_required(Role.CUSTOMER)


def tenant_select(model: type, *columns: Any) -> Select:
    """SELECT of `model` limited to the current admin's reseller (the operator sees all).

    Every admin query goes through here, so another tenant's objects simply don't exist.
    """
    stmt = select(*(columns or (model,)))
    return scope_to_tenant(stmt, model)


def scope_to_tenant(stmt: Select, model: type) -> Select:
    if current_user.role == Role.OPERATOR:
        return stmt
    if current_user.role != Role.RESELLER_ADMIN or current_user.reseller_id is None:
        abort(403)
    return stmt.where(model.reseller_id == current_user.reseller_id)


def get_scoped_or_404(model: type, object_id: Any, *, for_update: bool = False):
    """Load one object of the current tenant; another tenant's id answers 404."""
    stmt = tenant_select(model).where(model.id == object_id)
    if for_update:
        stmt = stmt.with_for_update()
    obj = db.session().scalar(stmt)
    if obj is None:
        abort(404)
    return obj


def content_security_policy(app: Flask) -> str:
    stripe_js = app.config["STRIPE_JS_URL"]
    stripe_origin = "/".join(stripe_js.split("/")[:3])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {stripe_origin}",
            f"frame-src {stripe_origin}",
            f"connect-src 'self' {stripe_origin}",
            "img-src 'self' data:",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def init_app(app: Flask) -> None:
    csp = content_security_policy(app)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint and request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response
