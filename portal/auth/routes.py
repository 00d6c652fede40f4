"""Sign-in (password, then a two-factor code when enabled or required), sign-out, reset."""

from __future__ import annotations

import time
import unicodedata
from urllib.parse import urlsplit

from flask import (
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadData, URLSafeTimedSerializer

from portal import audit, db
from portal.auth import bp, profile, sessions, twofactor
from portal.auth.forms import (
    NEW_PASSWORD_HINT,
    CodeForm,
    ForgotForm,
    LoginForm,
    NewPasswordForm,
    SetupCodeForm,
)
from portal.auth.service import SignInError, authenticate, record_sign_in
from portal.domain import DomainError
from portal.extensions import client_address, limiter
from portal.i18n import LANGUAGES, SESSION_KEY, _
from portal.models import User

PENDING_TTL = 10 * 60  # seconds between the password and the second factor
DEVICE_COOKIE = "portal_device"
DEVICE_MAX_AGE = 180 * 24 * 3600


def home_for(user) -> str:
    return url_for("admin.index") if user.is_admin else url_for("billing.balance")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _two_factor_limit() -> str:
    return current_app.config.get("TWO_FACTOR_RATE_LIMIT", "5 per 5 minutes")


def _pending_key() -> str:
    pending = session.get("pending_2fa")
    if isinstance(pending, dict) and isinstance(pending.get("u"), int):
        return f"2fa-user:{pending['u']}"
    if current_user.is_authenticated:
        return f"2fa-user:{current_user.id}"
    return f"2fa-addr:{client_address()}"


def _counts_as_failure(response) -> bool:
    return response.status_code == 422


two_factor_limit = limiter.limit(
    _two_factor_limit, key_func=_pending_key, methods=["POST"], deduct_when=_counts_as_failure
)


def safe_next(target: str | None) -> str | None:
    """A same-site path to go to after sign-in, or None.

    Whitespace and control characters are removed first (browsers drop tabs and newlines
    from URLs, so "/\\t/evil.example" would become "//evil.example"); then only a path that
    starts with one "/" and names no scheme or host is accepted.
    """
    if not target or len(target) > 2000:
        return None
    cleaned = "".join(
        ch for ch in target if not ch.isspace() and unicodedata.category(ch)[0] not in "CZ"
    )
    if not cleaned.startswith("/") or cleaned.startswith("//") or "\\" in cleaned:
        return None
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc:
        return None
    return cleaned


# --- Device cookie: browsers that signed in before skip the per-account delay --------------


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="portal-device")


def trusted_user_ids() -> frozenset:
    raw = request.cookies.get(DEVICE_COOKIE, "")
    if not raw or len(raw) > 500:
        return frozenset()
    try:
        ids = _device_serializer().loads(raw, max_age=DEVICE_MAX_AGE)
    except BadData:
        return frozenset()
    return frozenset(i for i in ids if isinstance(i, int)) if isinstance(ids, list) else frozenset()


def _remember_device(response, user: User):
    ids = [user.id] + [i for i in trusted_user_ids() if i != user.id][:4]
    response.set_cookie(
        DEVICE_COOKIE,
        _device_serializer().dumps(ids),
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    return response


# --- Sign-in ----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(
                db.session(),
                email=form.email.data,
                password=form.password.data,
                ip=client_address(),
                trusted_user_ids=trusted_user_ids(),
            )
        except SignInError as exc:
            form.form_errors.append(str(exc))
            if exc.retry_after:
                headers = {"Retry-After": str(exc.retry_after)}
                return render_template("auth/login.html", form=form), 429, headers
            return render_template("auth/login.html", form=form), 200
        target = safe_next(request.args.get("next"))
        if user.two_factor_enabled or twofactor.required_for(user):
            session.clear()  # nothing of the anonymous session survives
            session["pending_2fa"] = {
                "u": user.id,
                "n": user.session_nonce,
                "t": int(time.time()),
                "next": target,
            }
            return redirect(url_for("auth.two_factor"))
        return _finish_sign_in(user, "password", target)
    return render_template("auth/login.html", form=form)


def _finish_sign_in(
    user: User, method: str, target: str | None, *, response=None, notice: str | None = None
):
    session_db = db.session()
    key = sessions.start(session_db, user)
    record_sign_in(session_db, user, method=method)
    session_db.commit()
    session.clear()  # a fresh session at sign-in (no fixation)
    session.permanent = True
    login_user(user)
    session["sid"] = key
    if notice:
        flash(notice, "info")
    if response is None:
        flash(_("Signed in as %(email)s.", email=user.email), "success")
        response = redirect(target or home_for(user))
    return _remember_device(response, user)


def _pending_user() -> tuple[User | None, dict]:
    pending = session.get("pending_2fa")
    if not isinstance(pending, dict) or not isinstance(pending.get("u"), int):
        return None, {}
    if not isinstance(pending.get("t"), int) or time.time() - pending["t"] > PENDING_TTL:
        return None, {}
    user = db.session().get(User, pending["u"])
    if user is None or not user.active or user.session_nonce != pending.get("n"):
        return None, {}
    return user, pending


def _sign_in_again():
    session.pop("pending_2fa", None)
    flash(_("Please sign in again."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/login/two-factor", methods=["GET", "POST"])
@two_factor_limit
def two_factor():
    """The second step: a code from the authenticator app, or a recovery code."""
    user, pending = _pending_user()
    if user is None:
        return _sign_in_again()
    if not user.two_factor_enabled:
        return redirect(url_for("auth.two_factor_enroll"))
    form = CodeForm()
    if form.validate_on_submit():
        session_db = db.session()
        method = twofactor.verify(session_db, user, form.code.data)
        if method is not None:
            notice = None
            if method == "recovery":
                left = twofactor.recovery_codes_left(session_db, user)
                notice = f"Recovery code used: {left} left. Make new ones on your profile."
            return _finish_sign_in(user, f"password+{method}", pending.get("next"), notice=notice)
        _audit_user(user, "auth.two_factor_failed")
        session_db.commit()
        form.code.errors.append(_("That code is not right. Check your app's clock and try again."))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/two_factor.html", form=form), status


@bp.route("/login/two-factor/setup", methods=["GET", "POST"])
@two_factor_limit
def two_factor_enroll():
    """Required two-factor set-up at sign-in (operator and reseller admins)."""
    user, pending = _pending_user()
    if user is None:
        return _sign_in_again()
    if user.two_factor_enabled:
        return redirect(url_for("auth.two_factor"))
    return _setup_page(user, url_for("auth.two_factor_enroll"), pending=pending)


def _setup_page(user: User, action: str, *, pending: dict | None = None):
    """Show the QR code of a new secret; a right code turns two-factor on (shared with
    the profile's set-up)."""
    secret = session.get("totp_setup")
    if not isinstance(secret, str) or len(secret) != 32:
        secret = session["totp_setup"] = twofactor.new_secret()
    form = SetupCodeForm()
    if form.validate_on_submit():
        session_db = db.session()
        codes = twofactor.enable(session_db, user, secret, form.code.data)
        if codes is not None:
            session_db.commit()
            session.pop("totp_setup", None)
            done = render_template(
                "auth/recovery_codes.html",
                codes=codes,
                continue_url=(pending or {}).get("next") or home_for(user),
            )
            if pending is not None:
                return _finish_sign_in(
                    user, "password+totp-setup", None, response=make_response(done)
                )
            return done
        form.code.errors.append(_("That code is not right. Scan the code again and retry."))
    uri = twofactor.provisioning_uri(user, secret)
    status = 422 if request.method == "POST" else 200
    return render_template(
        "auth/two_factor_setup.html",
        form=form,
        action=action,
        secret=secret,
        qr=twofactor.qr_data_uri(uri),
        required=pending is not None,
    ), status


def _audit_user(user: User, action: str) -> None:
    audit.record(
        db.session(),
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action=action,
        object_type="user",
        object_id=user.id,
    )


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    user = current_user._get_current_object()
    session_db = db.session()
    sessions.revoke(session_db, user, session.get("sid"))
    _audit_user(user, "auth.sign_out")
    session_db.commit()
    logout_user()
    session.clear()
    # The sign-in page that follows stays in the language this person reads.
    if user.language in LANGUAGES:
        session[SESSION_KEY] = user.language
    flash(_("You have been signed out."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))


# --- Password reset -------------------------------------------------------------------------


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def forgot():
    form = ForgotForm()
    if form.validate_on_submit():
        profile.request_reset(db.session(), form.email.data)
        # The same answer whether or not the email has an account.
        flash(
            _(
                "If an account has this email, we have sent it a link to choose a new password. "
                "The link is valid for 30 minutes."
            ),
            "info",
        )
        return redirect(url_for("auth.login"), 303)
    return render_template("auth/forgot.html", form=form)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def reset(token: str):
    from portal.auth.tokens import user_for_reset

    if user_for_reset(db.session(), token) is None:
        return render_template("auth/reset_invalid.html"), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            profile.reset_password(db.session(), token, form.password.data)
        except DomainError as exc:
            db.session().rollback()
            form.password.errors.append(exc.message)
        else:
            if current_user.is_authenticated:
                logout_user()
            session.clear()
            flash(
                _("Your password is changed and every session signed out. Sign in now."), "success"
            )
            return redirect(url_for("auth.login"), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("auth/reset.html", form=form, hint=NEW_PASSWORD_HINT), status


from portal.auth import profile_views  # noqa: E402,F401
