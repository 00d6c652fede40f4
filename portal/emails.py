"""Emails for money events: a text and an HTML part from templates/email/, PDFs attached.

Each helper queues one mail (and one in-portal notice) through notifications.notify, so
the outbox stays the one queue and `dedupe_key` makes every event mail at most once.
Templates: `email/<name>.txt` sets `subject` and is the text part; `email/<name>.html`
(extending `email/_layout.html`) is the HTML part. Neither needs a Flask app context.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import documents, notifications
from portal.i18n import DEFAULT_LOCALE, rendering_in
from portal.models import Account, Invoice, Receipt, User


def portal_url() -> str:
    """Where links in mails point (PUBLIC_URL; empty outside the app)."""
    return current_app.config.get("PUBLIC_URL", "").rstrip("/") if has_app_context() else ""


def recipient_language(db: Session, account: Account) -> str:
    """The language the account's mails are written in: its first user's preferred language."""
    language = db.scalar(
        select(User.language).where(User.account_id == account.id).order_by(User.id).limit(1)
    )
    return language or DEFAULT_LOCALE


def render_email(template: str, language: str = DEFAULT_LOCALE, **context) -> tuple[str, str, str]:
    """(subject, text, html) of `template` with `context`, written in `language`."""
    env = documents.environment()
    context = {"portal_url": portal_url(), "email_language": language, **context}
    with rendering_in(language):
        text = env.get_template(f"email/{template}.txt").make_module(context)
        subject = " ".join(str(getattr(text, "subject", "")).split())
        html = env.get_template(f"email/{template}.html").render(subject=subject, **context)
        return subject, str(text).strip() + "\n", html


def queue_email(
    db: Session,
    *,
    account: Account,
    template: str,
    dedupe_key: str,
    level: str = "info",
    attach: tuple[Invoice | Receipt, ...] = (),
    **context,
) -> bool:
    """Queue `template` for the account; False if `dedupe_key` was already used."""
    language = recipient_language(db, account)
    subject, text, html = render_email(template, language, account=account, **context)
    return notifications.notify(
        db,
        account=account,
        subject=subject,
        body=text,
        html=html,
        attachments=documents.attachment_refs(*attach),
        dedupe_key=dedupe_key,
        level=level,
    )


# --- One helper per money event -----------------------------------------------------------------


def receipt_email(db: Session, *, account: Account, receipt: Receipt) -> bool:
    """The receipt of a card payment, with its PDF."""
    return queue_email(
        db,
        account=account,
        template="receipt",
        dedupe_key=f"receipt:{receipt.id}",
        attach=(receipt,),
        receipt=receipt,
        number=documents.receipt_number(receipt),
    )


def invoice_email(
    db: Session,
    *,
    account: Account,
    invoice: Invoice,
    due_on: date | None = None,
    dedupe_key: str | None = None,
):
    """A new invoice (or a resend, with its own key), with a link and its PDF."""
    from portal.invoices import invoice_number

    return queue_email(
        db,
        account=account,
        template="invoice",
        dedupe_key=dedupe_key or f"invoice:{invoice.id}",
        attach=(invoice,),
        invoice=invoice,
        number=invoice_number(invoice),
        due_on=due_on,
    )


def reminder_email(
    db: Session, *, account: Account, invoice: Invoice, due_on: date, dedupe_key: str
) -> bool:
    """A reminder that an invoice is overdue, with its PDF (key e.g. "reminder:<id>:<n>")."""
    from portal.invoices import invoice_number

    return queue_email(
        db,
        account=account,
        template="reminder",
        dedupe_key=dedupe_key,
        level="warning",
        attach=(invoice,),
        invoice=invoice,
        number=invoice_number(invoice),
        due_on=due_on,
    )


def plan_change_email(
    db: Session,
    *,
    account: Account,
    old_plan: str,
    new_plan: str,
    charge_minor: int,
    reserve_minor: int,
    dedupe_key: str,
) -> bool:
    """Confirmation of a plan change: what was charged now or granted as reserve credit."""
    return queue_email(
        db,
        account=account,
        template="plan_change",
        dedupe_key=dedupe_key,
        old_plan=old_plan,
        new_plan=new_plan,
        charge_minor=charge_minor,
        reserve_minor=reserve_minor,
    )


def credit_limit_email(
    db: Session,
    *,
    account: Account,
    old_limit: str,
    new_limit: str,
    valid_until: datetime | None,
    dedupe_key: str,
) -> bool:
    """The credit limit changed (permanent, temporary increase, or its end)."""
    return queue_email(
        db,
        account=account,
        template="credit_limit",
        dedupe_key=dedupe_key,
        old_limit=old_limit,
        new_limit=new_limit,
        valid_until=valid_until,
    )


def funds_warning_email(
    db: Session, *, account: Account, what: str, funds: str, label: str, dedupe_key: str
) -> bool:
    """Low funds (prepaid) or credit limit (postpaid) warning threshold reached."""
    return queue_email(
        db,
        account=account,
        template="funds_warning",
        dedupe_key=dedupe_key,
        level="warning",
        what=what,
        funds=funds,
        label=label,
    )


def autorecharge_failed_email(
    db: Session,
    *,
    account: Account,
    amount_minor: int,
    reason: str,
    next_attempt_at: datetime | None,
    dedupe_key: str,
) -> bool:
    """An automatic top-up could not charge any card."""
    return queue_email(
        db,
        account=account,
        template="autorecharge_failed",
        dedupe_key=dedupe_key,
        level="error",
        amount_minor=amount_minor,
        reason=reason,
        next_attempt_at=next_attempt_at,
    )
