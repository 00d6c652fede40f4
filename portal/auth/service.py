"""Sign-in: password check with a per-account lockout."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal.models import User, utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
# Compared against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASH = generate_password_hash("dummy-password", method="pbkdf2:sha256:1000")


class SignInError(Exception):
    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def find_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def authenticate(db: Session, *, email: str, password: str) -> User:
    """Return the user for good credentials; count failures and lock after MAX_FAILURES."""
    user = find_user_by_email(db, email)
    now = utcnow()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        raise SignInError("Wrong email or password.")
    if user.locked_until is not None and user.locked_until > now:
        seconds = int((user.locked_until - now).total_seconds()) + 1
        raise SignInError(
            f"Too many failed sign-ins. Try again in {seconds // 60 + 1} minutes.", seconds
        )
    if not check_password_hash(user.password_hash, password) or not user.active:
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        db.commit()
        raise SignInError("Wrong email or password.")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if not user.session_nonce:
        user.session_nonce = secrets.token_hex(8)
    db.commit()
    return user


def sign_out_everywhere(db: Session, user: User) -> None:
    """Invalidate every session of the user (the nonce is part of the session id)."""
    user.session_nonce = secrets.token_hex(8)
    db.commit()
