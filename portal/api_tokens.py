"""Bearer tokens for the switch API: created once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.domain import ValidationFailed
from portal.i18n import _
from portal.models import ApiToken, Reseller, utcnow

TOKEN_PREFIX = "vbp_"
# Writing last_used_at on every call would make each charge two writes; a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A live token is looked up once and then trusted for this long in each process: a
# revocation takes effect within these seconds everywhere (at once in the revoking process).
CACHE_SECONDS = 5.0
CACHE_MAX = 10_000


@dataclass(frozen=True)
class AuthenticatedToken:
    """What a request needs of its token (cached; never an ORM object shared by threads)."""

    id: int
    reseller_id: int | None
    last_used_at: datetime | None
    token_hash: str


_clock = time.monotonic
_cache: dict[str, tuple[float, AuthenticatedToken]] = {}
_cache_lock = threading.Lock()


def forget_cached(token_hash: str | None = None) -> None:
    """Drop one cached token (or all of them)."""
    with _cache_lock:
        if token_hash is None:
            _cache.clear()
        else:
            _cache.pop(token_hash, None)


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


def authenticate(db: Session, header: str | None) -> AuthenticatedToken | None:
    """The live token named by an `Authorization: Bearer ...` header, or None.

    One indexed query per token per CACHE_SECONDS; unknown and revoked tokens are never
    cached (they query every time, so a new token works at once).
    """
    scheme, _sep, plaintext = (header or "").partition(" ")
    plaintext = plaintext.strip()
    if scheme.lower() != "bearer" or not plaintext or len(plaintext) > 200:
        return None
    digest = hash_token(plaintext)
    now = _clock()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = db.execute(
        select(ApiToken.id, ApiToken.reseller_id, ApiToken.revoked_at, ApiToken.last_used_at).where(
            ApiToken.token_hash == digest
        )
    ).first()
    if row is None or row.revoked_at is not None:
        forget_cached(digest)
        return None
    token = AuthenticatedToken(row.id, row.reseller_id, row.last_used_at, digest)
    with _cache_lock:
        if len(_cache) >= CACHE_MAX:
            _cache.clear()
        _cache[digest] = (now + CACHE_SECONDS, token)
    return token


def touch_token(db: Session, token) -> None:
    """Record that the token was used (at most once a minute; the caller commits)."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        db.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        with _cache_lock:  # the cached copy learns it, so the next charges skip the write
            hit = _cache.get(token.token_hash)
            if hit is not None and hit[1].id == token.id:
                _cache[token.token_hash] = (hit[0], replace(hit[1], last_used_at=now))


def revoke_token(db: Session, *, token: ApiToken) -> bool:
    """Revoke a token; False when it already was (the caller commits)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    forget_cached(token.token_hash)  # other processes: within CACHE_SECONDS
    return True


def resellers(db: Session) -> list[Reseller]:
    """Every reseller, by name (the operator picks one for a new token)."""
    return list(db.scalars(select(Reseller).order_by(Reseller.name)))
