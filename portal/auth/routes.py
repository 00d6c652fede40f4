from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal import db
from portal.auth import bp
from portal.auth.forms import LoginForm
from portal.auth.service import SignInError, authenticate, sign_out_everywhere
from portal.extensions import limiter


def home_for(user) -> str:
    return url_for("admin.index") if user.is_admin else url_for("billing.balance")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = authenticate(db.session(), email=form.email.data, password=form.password.data)
        except SignInError as exc:
            form.form_errors.append(str(exc))
            status = 429 if exc.retry_after else 200
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
            return render_template("auth/login.html", form=form), status, headers
        session.clear()  # a fresh session at sign-in (no fixation)
        session.permanent = True
        login_user(user)
        flash(f"Signed in as {user.email}.", "success")
        return redirect(_safe_next() or home_for(user))
    return render_template("auth/login.html", form=form), status


def _safe_next() -> str | None:
    target = request.args.get("next", "")
    # Only local paths: no scheme, no host, no protocol-relative "//".
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    sign_out_everywhere(db.session(), current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You have been signed out.", "success")
    return redirect(url_for("auth.login"))


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))
