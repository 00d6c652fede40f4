"""Server-side records of signed-in browsers: listed on the Sessions page, revocable.

The session cookie holds a random key ("sid"); only its SHA-256 is stored. A session whose
record is revoked, missing or idle past PERMANENT_SESSION_LIFETIME is signed out.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import cache

from flask import current_app, request
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from portal.extensions import client_address
from portal.models import Account, LedgerEntry, User, UserSession, utcnow

TOUCH_EVERY = timedelta(minutes=1)
KEEP_ENDED = timedelta(days=30)  # ended sessions stay listed in the database this long


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start(db: Session, user: User) -> str:
    """Record a new session for the user; returns the key for the cookie (caller commits)."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    db.execute(  # the user's sessions that ended long ago
        delete(UserSession).where(
            UserSession.user_id == user.id,
            or_(
                UserSession.revoked_at < now - KEEP_ENDED,
                UserSession.last_seen_at < now - KEEP_ENDED,
            ),
        )
    )
    db.add(
        UserSession(
            user_id=user.id,
            key_hash=_hash(key),
            ip=client_address()[:64],
            user_agent=(request.user_agent.string or "")[:300],
            created_at=now,
            last_seen_at=now,
        )
    )
    return key


def _idle_limit() -> timedelta:
    return current_app.permanent_session_lifetime


def find_user_live(db: Session, user_id: int, key: str | None):
    """(user, live session record, user's account, its newest entry id) in one statement.

    None when there is no live session.

    The signed-in request's only statement before the view: the user, the server-side
    session record (revoked, missing or idle signs out) and the customer's account.
    """
    if not key or not isinstance(key, str):
        return None
    found = db.execute(_user_live_statement(), {"user_id": user_id, "key_hash": _hash(key)}).first()
    if found is None or found[1].last_seen_at < utcnow() - _idle_limit():
        return None
    return found


@cache
def _user_live_statement():
    # Built once per process (bound parameters): building it cost ~0.3 ms a request.
    # The account's newest ledger entry id rides along (one index probe in the database, no
    # extra round trip): the balance page's ETag needs it, so a 304 costs this statement only.
    newest_entry = (
        select(func.max(LedgerEntry.id))
        .where(LedgerEntry.account_id == User.account_id)
        .correlate(User)
        .scalar_subquery()
    )
    return (
        select(User, UserSession, Account, newest_entry)
        .join(UserSession, UserSession.user_id == User.id)
        .outerjoin(Account, Account.id == User.account_id)
        .where(
            User.id == bindparam("user_id"),
            UserSession.key_hash == bindparam("key_hash"),
            UserSession.revoked_at.is_(None),
        )
    )


def find_live(db: Session, user_id: int, key: str | None) -> UserSession | None:
    if not key or not isinstance(key, str):
        return None
    row = db.scalar(
        select(UserSession).where(
            UserSession.key_hash == _hash(key),
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
        )
    )
    if row is None or row.last_seen_at < utcnow() - _idle_limit():
        return None
    return row


def needs_touch(row: UserSession, now: datetime) -> bool:
    return row.last_seen_at < now - TOUCH_EVERY


def touch(engine, row_id: int, now: datetime) -> None:
    """Update last seen in a short transaction of its own (never the request's)."""
    with engine.begin() as conn:
        conn.execute(update(UserSession).where(UserSession.id == row_id).values(last_seen_at=now))


def active(db: Session, user: User) -> list[UserSession]:
    since = utcnow() - _idle_limit()
    return list(
        db.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == user.id,
                UserSession.revoked_at.is_(None),
                UserSession.last_seen_at >= since,
            )
            .order_by(UserSession.last_seen_at.desc())
        )
    )


def revoke(db: Session, user: User, key: str | None) -> None:
    """End one session (sign out of this browser; a copied cookie dies with it)."""
    if key:
        db.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.key_hash == _hash(key))
            .values(revoked_at=utcnow())
        )


def revoke_all(db: Session, user: User, *, except_key: str | None = None) -> None:
    stmt = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if except_key:
        stmt = stmt.where(UserSession.key_hash != _hash(except_key))
    db.execute(stmt.values(revoked_at=utcnow()))


def is_current(row: UserSession, key: str | None) -> bool:
    return bool(key) and row.key_hash == _hash(key)


def describe_device(user_agent: str) -> str:
    """A short, human name for a browser ("Firefox on Linux")."""
    ua = user_agent or ""
    browser = next(
        (name for token, name in _BROWSERS if token in ua), "Unknown browser" if ua else "Unknown"
    )
    system = next((name for token, name in _SYSTEMS if token in ua), "")
    return f"{browser} on {system}" if system else browser


_BROWSERS = [
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome", "Chrome (headless)"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python", "Script"),
    ("Werkzeug", "Script"),
]
_SYSTEMS = [
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
]
