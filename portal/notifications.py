"""Notifications: an email through the outbox plus an in-portal notice, and the outbox sender."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import documents
from portal.domain import DomainError
from portal.ledger import available_funds, lock_account
from portal.models import (
    Account,
    BillingModel,
    LedgerEntry,
    MailStatus,
    Notice,
    OutboxEmail,
    Role,
    User,
    utcnow,
)
from portal.money import format_money

log = logging.getLogger(__name__)

# Wait before each retry; after the last one the mail is marked failed.
RETRY_DELAYS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
]
BATCH = 50


def notify(
    db: Session,
    *,
    account: Account,
    subject: str,
    body: str,
    dedupe_key: str,
    level: str = "info",
    html: str = "",
    attachments: Sequence[str] = (),
) -> bool:
    """Queue one email and one notice for the account; False if dedupe_key was already used.

    `body` is the text part, `html` an optional HTML alternative, `attachments` references
    of documents attached as PDFs when the mail is sent (see portal.documents).
    """
    if db.scalar(select(OutboxEmail.id).where(OutboxEmail.dedupe_key == dedupe_key)):
        return False
    try:
        with db.begin_nested():
            db.add(
                OutboxEmail(
                    reseller_id=account.reseller_id,
                    account_id=account.id,
                    to_address=account.email or "",
                    subject=subject[:200],
                    body=body,
                    html_body=html,
                    attachments=",".join(attachments),
                    dedupe_key=dedupe_key[:120],
                    next_attempt_at=utcnow(),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        return False  # a concurrent twin queued it first
    db.add(Notice(account_id=account.id, level=level, message=subject[:500], created_at=utcnow()))
    db.flush()
    return True


def queue_email(
    db: Session,
    *,
    to_address: str,
    subject: str,
    body: str,
    reseller_id: int | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Queue one email to an address (sign-in and account mails; no in-portal notice).

    False if dedupe_key was already used. The caller commits.
    """
    if dedupe_key and db.scalar(select(OutboxEmail.id).where(OutboxEmail.dedupe_key == dedupe_key)):
        return False
    try:
        with db.begin_nested():
            db.add(
                OutboxEmail(
                    reseller_id=reseller_id,
                    to_address=to_address[:254],
                    subject=subject[:200],
                    body=body,
                    dedupe_key=dedupe_key[:120] if dedupe_key else None,
                    next_attempt_at=utcnow(),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        return False
    return True


def notify_admins(
    db: Session, *, reseller_id: int | None, subject: str, body: str, dedupe_key: str
) -> int:
    """Queue one email to each active admin of the reseller (the operators when it has none).

    Idempotent per dedupe_key; returns the mails queued. The caller commits.
    """
    admins = (
        db.scalars(
            select(User).where(
                User.active.is_(True),
                User.role == Role.RESELLER_ADMIN,
                User.reseller_id == reseller_id,
            )
        ).all()
        or db.scalars(select(User).where(User.active.is_(True), User.role == Role.OPERATOR)).all()
    )
    return sum(
        queue_email(
            db,
            to_address=admin.email,
            subject=subject,
            body=body,
            reseller_id=reseller_id,
            dedupe_key=f"{dedupe_key}:{admin.id}"[:120],
        )
        for admin in admins
    )


def notices_for(db: Session, account_id: int, limit: int = 50) -> list[Notice]:
    """The account's latest notices, newest first."""
    return list(
        db.scalars(
            select(Notice)
            .where(Notice.account_id == account_id)
            .order_by(Notice.id.desc())
            .limit(limit)
        )
    )


def mark_notices_read(db: Session, *, account_id: int) -> int:
    """Mark every unread notice of the account as read (the caller commits)."""
    now = utcnow()
    unread = db.scalars(
        select(Notice).where(Notice.account_id == account_id, Notice.read_at.is_(None))
    ).all()
    for notice in unread:
        notice.read_at = now
    return len(unread)


def send_outbox(db: Session, *, config: dict, now: datetime | None = None) -> int:
    """Send due outbox mails (committing each one); returns how many left the outbox."""
    now = now or utcnow()
    done = 0
    # Mails held while no SMTP server was configured are queued too, once there is one.
    queued = (
        [MailStatus.PENDING, MailStatus.OUTBOX]
        if config.get("MAIL_SERVER")
        else [MailStatus.PENDING]
    )
    while True:
        mail = _next_due(db, now, queued)
        if mail is None:
            return done
        done += _deliver(db, mail, config, now)
        db.commit()


def _next_due(db: Session, now: datetime, statuses: list[MailStatus]) -> OutboxEmail | None:
    # SKIP LOCKED: two senders never take the same mail (SQLite serialises writers anyway).
    return db.scalar(
        select(OutboxEmail)
        .where(OutboxEmail.status.in_(statuses), OutboxEmail.next_attempt_at <= now)
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def _deliver(db: Session, mail: OutboxEmail, config: dict, now: datetime) -> int:
    mail.attempts += 1
    if not mail.to_address:
        mail.status, mail.last_error = MailStatus.FAILED, "No email address on the account."
        return 0
    if not config.get("MAIL_SERVER"):
        # The demo has no SMTP server: the mail stays readable on the admin Outbox page.
        mail.status, mail.sent_at = MailStatus.OUTBOX, now
        return 1
    try:
        files = documents.attachment_files(db, mail.attachments)
    except Exception as exc:
        # One mail whose document cannot be rendered must not block the queue behind it.
        log.exception("mail %s: attachments could not be rendered", mail.id)
        _schedule_retry(mail, now, f"Attachment: {exc.__class__.__name__}: {exc}")
        return 0
    try:
        smtp_send(config, mail, files)
    except (OSError, smtplib.SMTPException) as exc:
        _schedule_retry(mail, now, f"{exc.__class__.__name__}: {exc}")
        return 0
    mail.status, mail.sent_at, mail.last_error = MailStatus.SENT, now, ""
    return 1


def _schedule_retry(mail: OutboxEmail, now: datetime, error: str) -> None:
    log.warning("mail %s failed (attempt %s): %s", mail.id, mail.attempts, error)
    mail.last_error = error[:300]
    if mail.attempts > len(RETRY_DELAYS):
        mail.status = MailStatus.FAILED
    else:
        mail.next_attempt_at = now + RETRY_DELAYS[mail.attempts - 1]


def build_message(
    config: dict, mail: OutboxEmail, files: Sequence[tuple[str, bytes]] = ()
) -> EmailMessage:
    """The MIME message: text, its HTML alternative if any, then the PDF attachments."""
    message = EmailMessage()
    message["From"] = config.get("MAIL_FROM") or "billing@portal.example"
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Message-ID"] = f"<outbox-{mail.id}@portal>"
    message.set_content(mail.body)
    if mail.html_body:
        message.add_alternative(mail.html_body, subtype="html")
    for filename, content in files:
        message.add_attachment(content, maintype="application", subtype="pdf", filename=filename)
    return message


def smtp_send(config: dict, mail: OutboxEmail, files: Sequence[tuple[str, bytes]] = ()) -> None:
    """Send one mail through the configured SMTP server."""
    message = build_message(config, mail, files)
    with smtplib.SMTP(config["MAIL_SERVER"], int(config.get("MAIL_PORT") or 25), timeout=10) as s:
        if config.get("MAIL_USE_TLS"):
            s.starttls()
        if config.get("MAIL_USERNAME"):
            s.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        s.send_message(message)


# --- Low funds / credit limit warnings (SPEC 5.3) ----------------------------------------

MAX_THRESHOLDS = 10


def resolve_thresholds(account: Account) -> dict[str, int]:
    """Each usable threshold of the account (normalised text -> level in minor units).

    Parsing and the percentage rule are portal.credit's (postpaid: of the permanent
    limit). A value that no longer parses is skipped rather than blocking the others.
    """
    from portal import credit

    resolved = {}
    text = credit.effective_thresholds_text(account)
    for raw in [part.strip() for part in text.split(",") if part.strip()][:MAX_THRESHOLDS]:
        try:
            (threshold,) = credit.parse_thresholds(raw, account.billing_model, account.currency)
        except (DomainError, ValueError):
            continue
        resolved[threshold.text(account.currency)] = credit.threshold_minor(threshold, account)
    return resolved


def crossed_thresholds(account: Account, now: datetime | None = None) -> list[str]:
    """Raw values of the thresholds the available funds are at or below now."""
    available = available_funds(account, now)
    return sorted(raw for raw, minor in resolve_thresholds(account).items() if available <= minor)


def check_funds_warnings(db: Session, *, account_id: int, now: datetime | None = None) -> int:
    """Notify each newly crossed threshold once; re-arm those the funds rose above.

    Cheap when nothing changed (no lock, no write). Returns the notices sent; the caller commits.
    """
    account = db.get(Account, account_id)
    if account is None or _fired(account) == crossed_thresholds(account, now):
        return 0
    account = lock_account(db, account_id)
    crossed, already = crossed_thresholds(account, now), set(_fired(account))
    sent = sum(_warn(db, account, raw) for raw in crossed if raw not in already)
    account.warnings_fired = ",".join(crossed)
    db.flush()
    return sent


def _fired(account: Account) -> list[str]:
    return sorted(part for part in (account.warnings_fired or "").split(",") if part)


def _warn(db: Session, account: Account, raw: str) -> int:
    # The latest entry identifies this crossing: a later crossing gets its own mail.
    last_entry = db.scalar(
        select(func.max(LedgerEntry.id)).where(LedgerEntry.account_id == account.id)
    )
    what = "Credit limit" if account.billing_model == BillingModel.POSTPAID else "Low funds"
    funds = format_money(available_funds(account), account.currency)
    if raw.endswith("%"):
        label = f"{raw} of your credit limit"
    else:
        label = format_money(resolve_thresholds(account).get(raw, 0), account.currency)
    key = f"funds-warning:{account.id}:{raw}:{last_entry or 0}"
    from portal import emails  # emails queues through notify

    return int(
        emails.funds_warning_email(
            db, account=account, what=what, funds=funds, label=label, dedupe_key=key
        )
    )
