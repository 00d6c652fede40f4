"""Sign-in: the password check and its throttling.

Throttling (what Stripe- and PortaBilling-like portals do: slow the guesser, never lock the
owner out):

- per (email typed, client address): PAIR_LIMIT failures within PAIR_WINDOW refuse further
  tries of that email from that address until the window has passed;
- per email typed (every address): after ACCOUNT_FREE failures within ACCOUNT_WINDOW each
  further try must wait a delay that doubles with every failure (capped at MAX_DELAY). A
  browser that has signed in to that account before (it carries our signed device cookie)
  skips this delay, so a distributed attack cannot keep the owner out;
- per client address (every email): flask-limiter on POST /login (LOGIN_RATE_LIMIT);
- the owner gets an email when the failures reach ACCOUNT_FREE (at most once a window).

Failures are keyed by a keyed hash of the email typed, whether an account has it or not,
so a known and an unknown email get the same answers, and the same hashing work (the dummy
hash uses the configured method and parameters).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal import audit
from portal.models import SignInFailure, User, utcnow

PAIR_LIMIT = 5
PAIR_WINDOW = timedelta(minutes=15)
ACCOUNT_FREE = 10
ACCOUNT_WINDOW = timedelta(hours=1)
FIRST_DELAY = 5  # seconds, doubled with each failure past ACCOUNT_FREE
MAX_DELAY = 15 * 60
WRONG = "Wrong email or password."
_dummy_hashes: dict[str, str] = {}


class SignInError(Exception):
    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def dummy_hash() -> str:
    """A hash of a random password made like a real one (same method and parameters)."""
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _dummy_hashes:
        _dummy_hashes[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return _dummy_hashes[method]


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()[:254]


def find_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def email_key(email: str) -> str:
    """Keyed hash of a typed email: failures are counted without storing what was typed."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"sign-in:" + normalise_email(email).encode(), "sha256").hexdigest()


def check_password(user: User | None, password: str) -> bool:
    """The password check; an unknown user costs the same hashing work as a known one."""
    ok = check_password_hash(user.password_hash if user else dummy_hash(), password or "")
    return ok and user is not None


def authenticate(
    db: Session, *, email: str, password: str, ip: str, trusted_user_ids: frozenset = frozenset()
) -> User:
    """The user for good credentials, or SignInError (the same answers for unknown emails).

    `trusted_user_ids`: accounts this browser signed in to before (skip the account delay).
    """
    now = utcnow()
    key = email_key(email)
    user = find_user_by_email(db, email)
    wait = _pair_wait(db, key, ip, now)
    if wait is None and (user is None or user.id not in trusted_user_ids):
        wait = _account_wait(db, key, now)
    if wait is not None:
        raise SignInError(_too_many(wait), wait)
    if not check_password(user, password) or not user.active:
        _record_failure(db, key=key, ip=ip, user=user, now=now)
        db.commit()
        raise SignInError(WRONG)
    db.execute(delete(SignInFailure).where(SignInFailure.email_key == key))
    db.commit()
    return user


def _too_many(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-ins. Try again in {minutes} {unit}."


def _pair_wait(db: Session, key: str, ip: str, now: datetime) -> int | None:
    times = db.scalars(
        select(SignInFailure.created_at)
        .where(
            SignInFailure.email_key == key,
            SignInFailure.ip == ip,
            SignInFailure.created_at > now - PAIR_WINDOW,
        )
        .order_by(SignInFailure.created_at.desc())
        .limit(PAIR_LIMIT)
    ).all()
    if len(times) < PAIR_LIMIT:
        return None
    return _seconds_until(times[-1] + PAIR_WINDOW, now)


def account_failures(db: Session, key: str, now: datetime) -> tuple[int, datetime | None]:
    count, last = db.execute(
        select(func.count(), func.max(SignInFailure.created_at)).where(
            SignInFailure.email_key == key, SignInFailure.created_at > now - ACCOUNT_WINDOW
        )
    ).one()
    return count, last


def delay_after(failures: int) -> int:
    """Seconds to wait after `failures` failures of one email in ACCOUNT_WINDOW."""
    if failures < ACCOUNT_FREE:
        return 0
    return min(MAX_DELAY, FIRST_DELAY * 2 ** min(failures - ACCOUNT_FREE, 16))


def _account_wait(db: Session, key: str, now: datetime) -> int | None:
    count, last = account_failures(db, key, now)
    delay = delay_after(count)
    if not delay or last is None or last + timedelta(seconds=delay) <= now:
        return None
    return _seconds_until(last + timedelta(seconds=delay), now)


def _seconds_until(when: datetime, now: datetime) -> int:
    return max(1, int((when - now).total_seconds()) + 1)


def _record_failure(db: Session, *, key: str, ip: str, user: User | None, now: datetime) -> None:
    # Failures older than every window count for nothing any more (an indexed range).
    db.execute(
        delete(SignInFailure).where(
            SignInFailure.created_at <= now - max(ACCOUNT_WINDOW, PAIR_WINDOW)
        )
    )
    db.add(SignInFailure(email_key=key, ip=ip[:64], created_at=now))
    db.flush()
    if user is None:
        return
    audit.record(
        db,
        actor_user_id=None,
        reseller_id=user.reseller_id,
        action="auth.sign_in_failed",
        object_type="user",
        object_id=user.id,
    )
    count, _ = account_failures(db, key, now)
    if count == ACCOUNT_FREE:
        from portal.auth import mail

        mail.repeated_failures(db, user, count=count, now=now)


def record_sign_in(db: Session, user: User, *, method: str) -> None:
    """Bookkeeping of a completed sign-in (the caller commits)."""
    user.last_login_at = utcnow()
    if not user.session_nonce:
        user.session_nonce = secrets.token_hex(8)
    audit.record(
        db,
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action="auth.sign_in",
        object_type="user",
        object_id=user.id,
        after={"method": method},
    )


def sign_out_everywhere(db: Session, user: User) -> None:
    """Invalidate every session of the user (the nonce is part of the session id)."""
    from portal.auth import sessions

    user.session_nonce = secrets.token_hex(8)
    sessions.revoke_all(db, user)
    audit.record(
        db,
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action="auth.sign_out_everywhere",
        object_type="user",
        object_id=user.id,
    )
    db.commit()
