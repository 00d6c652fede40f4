"""Email outbox, in-portal notices and scheduler leases."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base
from portal.models.base import BigID, UTCDateTime, str_enum, utcnow


class MailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    OUTBOX = "outbox"  # kept in the outbox only: no MAIL_SERVER configured (demo)


class OutboxEmail(Base):
    __tablename__ = "email_outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    # Whose mail it is, so the admin Outbox page can be tenant-scoped.
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("resellers.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # the text/plain part
    # The text/html alternative ("" for a plain-text mail).
    html_body: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Documents attached when the mail is sent, e.g. "invoice:12,receipt:7": the PDF is
    # rendered at sending time, so queueing (inside a billing run) stays cheap.
    attachments: Mapped[str] = mapped_column(String(200), default="", server_default="")
    status: Mapped[MailStatus] = mapped_column(str_enum(MailStatus), default=MailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notice(Base):
    """A message shown to the account's users inside the portal."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobLease(Base):
    """Single-runner lease for a scheduled job across processes and hosts."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FundsCheck(Base):
    """A queued auto-recharge / funds-warning check of an account (durable, at most one row).

    Written in the debit's own transaction when the debit reached a threshold, so a crash
    after the commit cannot lose it; drained right after the commit and by the scheduler.
    `seq` grows with every new request, so a drain deletes only what it has checked.
    """

    __tablename__ = "funds_checks"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    recharge: Mapped[bool] = mapped_column(Boolean, default=True)
    seq: Mapped[int] = mapped_column(Integer, default=1)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RedeemFailure(Base):
    """A failed voucher redemption, counted for the lockout (per user and per address)."""

    __tablename__ = "redeem_failures"
    __table_args__ = (
        Index("ix_redeem_failures_user", "user_id", "created_at"),
        Index("ix_redeem_failures_ip", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
