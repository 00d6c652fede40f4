"""Bearer tokens for the switch API: created once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.domain import ValidationFailed
from portal.i18n import _
from portal.models import ApiToken, Reseller, utcnow

TOKEN_PREFIX = "vbp_"
# Writing last_used_at on every call would make each charge two writes; a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    plaintext: str  # shown to the admin once, never stored


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "replace")).hexdigest()


def create_token(db: Session, *, reseller_id: int | None, name: str) -> NewToken:
    """Create a token for a reseller (None: an operator token for every reseller)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ValidationFailed(_("Enter a name of 1 to 120 characters."), field="name")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        reseller_id=reseller_id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:12],
        created_at=utcnow(),
    )
    db.add(token)
    db.flush()
    return NewToken(token, plaintext)


def authenticate(db: Session, header: str | None) -> ApiToken | None:
    """The live token named by an `Authorization: Bearer ...` header, or None."""
    scheme, _sep, plaintext = (header or "").partition(" ")
    plaintext = plaintext.strip()
    if scheme.lower() != "bearer" or not plaintext or len(plaintext) > 200:
        return None
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None:
        return None
    return token


def touch_token(db: Session, token: ApiToken) -> None:
    """Record that the token was used (at most once a minute; the caller commits)."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        db.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))


def revoke_token(db: Session, *, token: ApiToken) -> bool:
    """Revoke a token; False when it already was (the caller commits)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def resellers(db: Session) -> list[Reseller]:
    """Every reseller, by name (the operator picks one for a new token)."""
    return list(db.scalars(select(Reseller).order_by(Reseller.name)))
