"""The signed-in person's profile: details, password, email, two-factor sign-in, sessions."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import force_locale
from flask_login import current_user, login_required, logout_user

from portal import db
from portal.auth import bp, profile, sessions, twofactor
from portal.auth.forms import (
    NEW_PASSWORD_HINT,
    ChangeEmailForm,
    ChangePasswordForm,
    DetailsForm,
    PasswordConfirmForm,
)
from portal.auth.routes import _setup_page, two_factor_limit
from portal.auth.service import check_password, sign_out_everywhere
from portal.domain import DomainError
from portal.i18n import LANGUAGES, SESSION_KEY, _


def _me():
    return current_user._get_current_object()


def _forms(**given) -> dict:
    me = _me()
    forms = {
        "details_form": DetailsForm(formdata=None, name=me.name, language=me.language),
        "password_form": ChangePasswordForm(formdata=None, prefix="pw"),
        "email_form": ChangeEmailForm(formdata=None, prefix="em"),
    }
    forms.update(given)
    return forms


def _page(status: int = 200, **given):
    return render_template(
        "auth/profile.html", hint=NEW_PASSWORD_HINT, user=_me(), **_forms(**given)
    ), status


def _attach(form, exc: DomainError) -> None:
    field = getattr(form, exc.field, None) if exc.field else None
    (field.errors if field is not None else form.form_errors).append(exc.message)


def _back_to(target: str | None) -> str:
    """The page the switcher was used on (a path of this site only), else the start page."""
    target = (target or "").strip()
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("auth.index")


@bp.post("/language")
def set_language():
    """The language switcher on every page: the session remembers it; a profile too."""
    language = request.form.get("language", "")
    if language not in LANGUAGES:
        flash(_("Choose one of the languages offered."), "error")
        return redirect(_back_to(request.form.get("next")), 303)
    session[SESSION_KEY] = language
    if current_user.is_authenticated:
        profile.set_language(db.session(), _me(), language)
    with force_locale(language):
        flash(_("Language changed to %(name)s.", name=LANGUAGES[language]), "success")
    return redirect(_back_to(request.form.get("next")), 303)


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile_page():
    form = DetailsForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                profile.update_details(
                    db.session(), _me(), name=form.name.data or "", language=form.language.data
                )
            except DomainError as exc:
                db.session().rollback()
                _attach(form, exc)
            else:
                flash(_("Profile saved."), "success")
                return redirect(url_for("auth.profile_page"), 303)
        return _page(422, details_form=form)
    return _page()


@bp.post("/profile/password")
@login_required
def change_password():
    form = ChangePasswordForm(prefix="pw")
    if form.validate_on_submit():
        try:
            profile.change_password(
                db.session(),
                _me(),
                current=form.current.data,
                new=form.password.data,
                keep_session=session.get("sid"),
            )
        except DomainError as exc:
            db.session().rollback()
            _attach(form, exc)
        else:
            flash(_("Password changed. Your other sessions were signed out."), "success")
            return redirect(url_for("auth.profile_page"), 303)
    return _page(422, password_form=form)


@bp.post("/profile/email")
@login_required
def change_email():
    form = ChangeEmailForm(prefix="em")
    if form.validate_on_submit():
        try:
            profile.request_email_change(
                db.session(), _me(), new_email=form.email.data, current=form.current.data
            )
        except DomainError as exc:
            db.session().rollback()
            _attach(form, exc)
        else:
            flash(
                _(
                    "We sent a confirmation link to the new address. "
                    "Your email changes when you follow it."
                ),
                "info",
            )
            return redirect(url_for("auth.profile_page"), 303)
    return _page(422, email_form=form)


@bp.route("/profile/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    """The link of the confirmation mail: a button confirms (mail scanners only GET)."""
    error = None
    if request.method == "POST":
        try:
            profile.confirm_email_change(db.session(), token)
        except DomainError as exc:
            db.session().rollback()
            error = exc.message
        else:
            flash(_("Your new email address is confirmed."), "success")
            return redirect(url_for("auth.index"), 303)
    status = 400 if error else 200
    return render_template("auth/confirm_email.html", token=token, error=error), status


# --- Two-factor sign-in -----------------------------------------------------------------------


@bp.get("/profile/two-factor")
@login_required
def two_factor_settings():
    me = _me()
    return render_template(
        "auth/two_factor_settings.html",
        user=me,
        required=twofactor.required_for(me),
        codes_left=twofactor.recovery_codes_left(db.session(), me),
        form=PasswordConfirmForm(formdata=None),
    )


@bp.route("/profile/two-factor/setup", methods=["GET", "POST"])
@login_required
@two_factor_limit
def two_factor_setup():
    me = _me()
    if me.two_factor_enabled:
        flash(_("Two-factor sign-in is already on."), "info")
        return redirect(url_for("auth.two_factor_settings"), 303)
    return _setup_page(me, url_for("auth.two_factor_setup"))


def _confirmed_by_password(action: str):
    """The password form of the two-factor page; the page with an error when wrong."""
    form = PasswordConfirmForm()
    me = _me()
    if form.validate_on_submit() and check_password(me, form.current.data):
        return None
    form.current.errors.append(_("Your current password is not right."))
    return render_template(
        "auth/two_factor_settings.html",
        user=me,
        required=twofactor.required_for(me),
        codes_left=twofactor.recovery_codes_left(db.session(), me),
        form=form,
        failed_action=action,
    ), 422


@bp.post("/profile/two-factor/recovery-codes")
@login_required
def two_factor_new_codes():
    me = _me()
    refused = _confirmed_by_password("codes")
    if refused:
        return refused
    if not me.two_factor_enabled:
        flash(_("Turn two-factor sign-in on first."), "info")
        return redirect(url_for("auth.two_factor_settings"), 303)
    codes = twofactor.new_recovery_codes(db.session(), me)
    db.session().commit()
    return render_template(
        "auth/recovery_codes.html", codes=codes, continue_url=url_for("auth.two_factor_settings")
    )


@bp.post("/profile/two-factor/disable")
@login_required
def two_factor_disable():
    me = _me()
    if twofactor.required_for(me):
        flash(_("Two-factor sign-in is required for administrators."), "error")
        return redirect(url_for("auth.two_factor_settings"), 303)
    refused = _confirmed_by_password("disable")
    if refused:
        return refused
    twofactor.disable(db.session(), me)
    db.session().commit()
    flash(_("Two-factor sign-in is off."), "success")
    return redirect(url_for("auth.two_factor_settings"), 303)


# --- Sessions ---------------------------------------------------------------------------------


@bp.get("/profile/sessions")
@login_required
def sessions_page():
    key = session.get("sid")
    rows = [
        (row, sessions.describe_device(row.user_agent), sessions.is_current(row, key))
        for row in sessions.active(db.session(), _me())
    ]
    return render_template("auth/sessions.html", rows=rows)


@bp.post("/profile/sessions/sign-out-everywhere")
@login_required
def sign_out_everywhere_view():
    sign_out_everywhere(db.session(), _me())
    logout_user()
    session.clear()
    flash(_("You are signed out on every device, this one included."), "success")
    return redirect(url_for("auth.login"), 303)
