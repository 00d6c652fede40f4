"""The signed-in person's own account: password, email, name, language; password reset."""

from __future__ import annotations

import secrets

from sqlalchemy import delete
from sqlalchemy.orm import Session

from portal import audit
from portal.auth import mail, sessions, tokens
from portal.auth.service import check_password, email_key, find_user_by_email, hash_password
from portal.customers import check_new_user_email, check_password_rules
from portal.domain import DomainError
from portal.i18n import (
    LANGUAGES,  # noqa: E402,F401  (the languages the UI ships in)
    _,
)
from portal.models import SignInFailure, User, utcnow


class ProfileError(DomainError):
    pass


def _audit(db: Session, user: User, action: str, **after) -> None:
    audit.record(
        db,
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action=action,
        object_type="user",
        object_id=user.id,
        after=after or None,
    )


def _require_current(user: User, password: str) -> None:
    if not check_password(user, password):
        raise ProfileError(_("Your current password is not right."), field="current")


def _set_password(db: Session, user: User, password: str) -> None:
    check_password_rules(password)
    user.password_hash = hash_password(password)


def update_details(db: Session, user: User, *, name: str, language: str) -> None:
    if language not in LANGUAGES:
        raise ProfileError(_("Choose one of the languages offered."), field="language")
    name = (name or "").strip()
    if len(name) > 200:
        raise ProfileError(_("Use a name of at most 200 characters."), field="name")
    before = {"name": user.name, "language": user.language}
    user.name, user.language = name, language
    audit.record(
        db,
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action="profile.update",
        object_type="user",
        object_id=user.id,
        before=before,
        after={"name": name, "language": language},
    )
    db.commit()


def set_language(db: Session, user: User, language: str) -> None:
    """The language chosen with the switcher on any page: the profile remembers it."""
    if language not in LANGUAGES:
        raise ProfileError(_("Choose one of the languages offered."), field="language")
    if user.language == language:
        return
    before = {"language": user.language}
    user.language = language
    audit.record(
        db,
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action="profile.update",
        object_type="user",
        object_id=user.id,
        before=before,
        after={"language": language},
    )
    db.commit()


def change_password(
    db: Session, user: User, *, current: str, new: str, keep_session: str | None
) -> None:
    """Change the password (the current one required); other sessions are signed out."""
    _require_current(user, current)
    _set_password(db, user, new)
    sessions.revoke_all(db, user, except_key=keep_session)
    _audit(db, user, "profile.password_changed")
    mail.security_notice(db, user, user.email, "Your password was changed")
    db.commit()


def request_email_change(db: Session, user: User, *, new_email: str, current: str) -> None:
    """Send a confirmation link to the new address; nothing changes until it is followed."""
    _require_current(user, current)
    email = check_new_user_email(db, new_email)
    mail.confirm_email(db, user, email, tokens.email_token(user, email))
    _audit(db, user, "profile.email_change_requested")
    db.commit()


def confirm_email_change(db: Session, token: str) -> User:
    found = tokens.email_change(db, token)
    if found is None:
        raise ProfileError(_("This confirmation link is invalid, used or expired."))
    user, new_email = found
    check_new_user_email(db, new_email)  # taken meanwhile?
    old = user.email
    user.email = new_email
    _audit(db, user, "profile.email_changed")
    mail.security_notice(db, user, old, f"The email of your account was changed to {new_email}")
    db.commit()
    return user


# --- Password reset -------------------------------------------------------------------------


def request_reset(db: Session, email: str) -> None:
    """Mail a reset link when an active user has this email; the caller answers the same."""
    user = find_user_by_email(db, email)
    if user is None or not user.active:
        # Written and committed like the known case (similar work, so similar time); only
        # the operator sees it, and only a keyed hash of what was typed.
        audit.record(
            db,
            actor_user_id=None,
            reseller_id=None,
            action="auth.password_reset_unknown",
            object_type="email",
            object_id=email_key(email)[:16],
        )
        db.commit()
        return
    bucket = int(utcnow().timestamp()) // 120  # at most one mail per user per 2 minutes
    mail.password_reset(db, user, tokens.reset_token(user), dedupe_key=f"reset:{user.id}:{bucket}")
    _audit(db, user, "auth.password_reset_requested")
    db.commit()


def reset_password(db: Session, token: str, password: str) -> User:
    """Set a new password through a reset link; every session of the user ends."""
    user = tokens.user_for_reset(db, token)
    if user is None:
        raise ProfileError(_("This reset link is invalid, used or expired. Ask for a new one."))
    _set_password(db, user, password)
    user.session_nonce = secrets.token_hex(8)
    sessions.revoke_all(db, user)
    db.execute(delete(SignInFailure).where(SignInFailure.email_key == email_key(user.email)))
    _audit(db, user, "auth.password_reset")
    mail.security_notice(db, user, user.email, "Your password was reset")
    db.commit()
    return user
