"""Sign-in bookkeeping: failed attempts, server-side sessions, two-factor recovery codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base
from portal.models.base import BigID, UTCDateTime, utcnow


class SignInFailure(Base):
    """A failed sign-in, keyed by a keyed hash of the email typed (known or not) and address.

    Keyed by the email rather than the user, so an unknown email is throttled exactly like a
    known one and the answers reveal nothing.
    """

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_email_ip", "email_key", "ip", "created_at"),
        Index("ix_sign_in_failures_email", "email_key", "created_at"),
        Index("ix_sign_in_failures_created", "created_at"),  # pruning old rows
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    email_key: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSession(Base):
    """One signed-in browser: the cookie holds a random key, only its hash is stored."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    """A one-time two-factor recovery code (only a hash is stored)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
