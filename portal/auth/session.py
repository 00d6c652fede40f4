"""Flask-Login wiring: loading users, the session id with its nonce, HTMX redirects."""

from __future__ import annotations

from flask import Flask, redirect, request, session, url_for
from htmx_flask import make_response

from portal import db
from portal.auth import sessions
from portal.extensions import login_manager
from portal.models import User, utcnow


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str) -> User | None:
        user_id, _, nonce = session_id.partition(":")
        if not user_id.isdigit() or len(user_id) > 18:
            return None
        found = sessions.find_user_live(db.session(), int(user_id), session.get("sid"))
        if found is None:
            return None
        user, row, account, newest_entry_id = found
        if not user.active or user.session_nonce != nonce:
            return None
        if account is not None:
            request.account = account  # portal.billing.context.current_account: no query
            request.newest_entry_id = newest_entry_id or 0  # portal.billing.freshness
        now = utcnow()
        if request.method in ("GET", "HEAD") and sessions.needs_touch(row, now):
            sessions.touch(db.get_engine(), row.id, now)
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        target = url_for("auth.login", next=request.full_path.rstrip("?"))
        if request.headers.get("HX-Request") == "true":
            # A 302 would swap the login page into a fragment; make the browser go there.
            return make_response("", 204, redirect=target)
        if request.path.startswith("/api/"):
            return {"error": "unauthorized"}, 401
        session["_flashes"] = [("info", login_manager.login_message)]
        return redirect(target)
