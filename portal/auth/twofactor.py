"""Two-factor sign-in: TOTP (RFC 6238, pyotp) and one-time recovery codes.

The secret is stored encrypted (the PIN vault); recovery codes only as SHA-256 (they are
random, 50 bits each, so a plain hash is enough). A code's time step is remembered, so an
observed code cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

import pyotp
import segno
from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portal import audit
from portal.models import RecoveryCode, User, utcnow
from portal.pins import vault

ISSUER = "VoIP Billing"
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def required_for(user: User) -> bool:
    return user.is_admin and bool(current_app.config.get("TWO_FACTOR_REQUIRED_FOR_ADMINS", True))


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The QR code as an SVG data: URI (allowed by the CSP's img-src; no script)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _clean_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "")


def code_matches(secret: str, code: str, *, after_step: int | None) -> int | None:
    """The time step a 6-digit code belongs to (now, or one step either side), if unused."""
    code = _clean_code(code)
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(time.time()) // totp.interval
    for step in (current - 1, current, current + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


def secret_of(user: User) -> str:
    return vault().decrypt(user.totp_secret)


def verify(db: Session, user: User, code: str) -> str | None:
    """'totp' or 'recovery' when the code is right (marking it used); None otherwise."""
    if not user.two_factor_enabled:
        return None
    step = code_matches(secret_of(user), code, after_step=user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return "totp"
    if _use_recovery_code(db, user, code):
        return "recovery"
    return None


def _hash_code(code: str) -> str:
    return hashlib.sha256(_clean_code(code).lower().encode()).hexdigest()


def _use_recovery_code(db: Session, user: User, code: str) -> bool:
    cleaned = _clean_code(code)
    if not 8 <= len(cleaned) <= 20:
        return False
    row = db.scalar(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_code(cleaned),
            RecoveryCode.used_at.is_(None),
        )
    )
    if row is None:
        return False
    row.used_at = utcnow()
    return True


def recovery_codes_left(db: Session, user: User) -> int:
    return len(
        db.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def new_recovery_codes(db: Session, user: User) -> list[str]:
    """Replace the user's recovery codes; returns the new ones (shown once)."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(raw)))
    return codes


def enable(db: Session, user: User, secret: str, code: str) -> list[str] | None:
    """Turn two-factor on when `code` proves the authenticator has `secret` (caller commits).

    Returns the new recovery codes, or None for a wrong code.
    """
    step = code_matches(secret, code, after_step=None)
    if step is None:
        return None
    user.totp_secret = vault().encrypt(secret)
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    _audit(db, user, "auth.two_factor_enabled")
    return new_recovery_codes(db, user)


def disable(db: Session, user: User) -> None:
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    _audit(db, user, "auth.two_factor_disabled")


def _audit(db: Session, user: User, action: str) -> None:
    audit.record(
        db,
        actor_user_id=user.id,
        reseller_id=user.reseller_id,
        action=action,
        object_type="user",
        object_id=user.id,
    )
