"""Signed, expiring tokens for email links (password reset, new email confirmation).

Single use without a table: each token carries a fingerprint of what using it changes
(the password hash, the current email), so once used it no longer matches.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from portal.models import User

RESET_MAX_AGE = 30 * 60
EMAIL_MAX_AGE = 24 * 60 * 60


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"portal-{purpose}")


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:20]


def reset_token(user: User) -> str:
    return _serializer("reset").dumps({"u": user.id, "p": _fingerprint(user.password_hash)})


def user_for_reset(db: Session, token: str) -> User | None:
    """The user a reset token is for, if it is genuine, fresh and unused; else None."""
    data = _load("reset", token, RESET_MAX_AGE)
    user = db.get(User, data["u"]) if data and isinstance(data.get("u"), int) else None
    if user is None or not user.active or data.get("p") != _fingerprint(user.password_hash):
        return None
    return user


def email_token(user: User, new_email: str) -> str:
    return _serializer("email").dumps(
        {"u": user.id, "e": new_email, "c": _fingerprint(user.email.lower())}
    )


def email_change(db: Session, token: str) -> tuple[User, str] | None:
    """(user, new email) of a genuine, fresh, unused confirmation token; else None."""
    data = _load("email", token, EMAIL_MAX_AGE)
    if not data or not isinstance(data.get("u"), int) or not isinstance(data.get("e"), str):
        return None
    user = db.get(User, data["u"])
    if user is None or not user.active or data.get("c") != _fingerprint(user.email.lower()):
        return None
    return user, data["e"]


def _load(purpose: str, token: str, max_age: int) -> dict | None:
    if not token or len(token) > 1000:
        return None
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except BadData:
        return None
    return data if isinstance(data, dict) else None
