"""The admin's Billing area: the seed's three stages over many accounts, the invoice list, void.

Everything that moves money or numbers documents is in portal.invoices; this module only
reads (tenant-scoped listings, the review of every due account, CSV) and runs those
operations account by account, so one account's failure is reported, not fatal.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from portal import audit, invoices
from portal.domain import DomainError, ValidationFailed
from portal.i18n import N_, _, format_day
from portal.ledger import lock_account
from portal.models import (
    Account,
    CreditNote,
    Invoice,
    InvoiceStatus,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from portal.money import format_plain
from portal.topup_cards import neutralise

log = logging.getLogger(__name__)

PAGE_SIZE = 50
# "draft" is not a stored status: an invoice generated but not sent out yet.
STATUS_FILTERS = ("draft", *(s.value for s in InvoiceStatus))


@dataclass(frozen=True)
class InvoiceFilters:
    status: str = ""
    period: date | None = None  # the first day of a month: invoices whose period starts in it
    customer: str = ""  # account number, or part of the name


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    account: Account
    number: str
    credit_note: str = ""

    @property
    def status_label(self) -> str:
        return status_label(self.invoice)


def status_label(invoice: Invoice) -> str:
    """The status people read: "Draft" until sent (void wins), else the stored status."""
    if invoice.status != InvoiceStatus.VOID and invoice.sent_at is None:
        return N_("Draft")
    return invoice.status.value.capitalize()


def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


# --- The invoice list --------------------------------------------------------------------------


def _filtered(scoped: Select, filters: InvoiceFilters) -> Select:
    stmt = scoped.join(Account, Account.id == Invoice.account_id)
    if filters.status == "draft":
        stmt = stmt.where(Invoice.sent_at.is_(None), Invoice.status != InvoiceStatus.VOID)
    elif filters.status in STATUS_FILTERS:
        stmt = stmt.where(Invoice.status == InvoiceStatus(filters.status))
    if filters.period is not None:
        start = month_start(filters.period)
        stmt = stmt.where(Invoice.period_start >= start, Invoice.period_start < _next_month(start))
    text = filters.customer.strip()[:100].lower()
    if text:
        stmt = stmt.where(
            or_(func.lower(Account.number) == text, func.lower(Account.name).like(f"%{text}%"))
        )
    return stmt


def _rows(db: Session, stmt: Select) -> list[InvoiceRow]:
    pairs = db.execute(stmt.add_columns(Account)).all()
    notes = _credit_notes(db, [invoice.id for invoice, _paid in pairs])
    return [
        InvoiceRow(invoice, account, invoices.invoice_number(invoice), notes.get(invoice.id, ""))
        for invoice, account in pairs
    ]


def _credit_notes(db: Session, invoice_ids: list[int]) -> dict[int, str]:
    if not invoice_ids:
        return {}
    notes = db.scalars(select(CreditNote).where(CreditNote.invoice_id.in_(invoice_ids)))
    return {note.invoice_id: invoices.credit_note_number(note) for note in notes}


def search_invoices(
    db: Session, *, scoped: Select, filters: InvoiceFilters, page: int = 1
) -> tuple[list[InvoiceRow], bool]:
    """One page of the tenant's invoices matching `filters`, newest first; and whether more exist.

    `scoped` is the tenant-scoped SELECT of Invoice (security.tenant_select).
    """
    page = max(1, min(page, 10_000))
    stmt = (
        _filtered(scoped, filters)
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    )
    rows = _rows(db, stmt)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


CSV_HEADER = [
    "Invoice", "Customer account", "Customer", "Period start", "Period end", "Issued",
    "Due on", "Sent", "Status", "Currency", "Subtotal", "Tax", "Total", "Paid", "Amount due",
    "Credit note",
]  # fmt: skip


def invoices_csv(db: Session, *, scoped: Select, filters: InvoiceFilters) -> str:
    """Every invoice matching `filters` as CSV; text cells neutralised against formulas."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    stmt = _filtered(scoped, filters).order_by(Invoice.issued_at.desc(), Invoice.id.desc())
    for row in _rows(db, stmt):
        writer.writerow([neutralise(cell) for cell in _csv_cells(row)])
    return out.getvalue()


def _csv_cells(row: InvoiceRow) -> list[str]:
    invoice = row.invoice

    def amount(minor: int) -> str:
        return format_plain(minor, invoice.currency)

    return [
        row.number,
        row.account.number,
        row.account.name,
        invoice.period_start.isoformat(),
        invoice.period_end.isoformat(),
        invoice.issued_at.strftime("%Y-%m-%d %H:%M") if invoice.issued_at else "",
        invoice.due_on.isoformat() if invoice.due_on else "",
        invoice.sent_at.strftime("%Y-%m-%d %H:%M") if invoice.sent_at else "",
        row.status_label,
        invoice.currency,
        amount(invoice.subtotal_minor),
        amount(invoice.tax_minor),
        amount(invoice.total_minor),
        amount(invoice.paid_minor),
        amount(invoice.total_minor - invoice.paid_minor),
        row.credit_note,
    ]


# --- Review billing details of every due account ----------------------------------------------


@dataclass
class DueReview:
    """The coming invoices of every due account, with a grand total per currency."""

    drafts: list[invoices.Draft] = field(default_factory=list)
    periods: dict[int, int] = field(default_factory=dict)  # account id -> periods due

    @property
    def grand_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for draft in self.drafts:
            currency = draft.account.currency
            totals[currency] = totals.get(currency, 0) + draft.total_minor
        return totals


def _subscribed(db: Session, scoped_accounts: Select) -> list[tuple[Account, Subscription]]:
    stmt = (
        scoped_accounts.add_columns(Subscription)
        .join(Subscription, Subscription.account_id == Account.id)
        .where(Subscription.status == SubscriptionStatus.ACTIVE)
        .order_by(Account.name, Account.id)
    )
    return [(account, subscription) for account, subscription in db.execute(stmt).all()]


def review_due(db: Session, *, scoped_accounts: Select, now: datetime | None = None) -> DueReview:
    """Review Billing Details of every account whose invoice is due (its period has started)."""
    now = now or utcnow()
    review = DueReview()
    for account, subscription in _subscribed(db, scoped_accounts):
        due = invoices.periods_due(db, subscription, now)
        if not due:
            continue
        review.drafts.append(invoices.review_billing_details(db, account=account, now=now))
        review.periods[account.id] = len(due)
    return review


def periods_due_count(db: Session, *, account: Account, now: datetime) -> int:
    """How many started periods of the account have no invoice yet."""
    subscription = db.scalar(
        select(Subscription).where(
            Subscription.account_id == account.id,
            Subscription.status == SubscriptionStatus.ACTIVE,
        )
    )
    return len(invoices.periods_due(db, subscription, now)) if subscription else 0


def due_account_ids(db: Session, *, scoped_accounts: Select, now: datetime) -> list[int]:
    return [
        account.id
        for account, subscription in _subscribed(db, scoped_accounts)
        if invoices.periods_due(db, subscription, now)
    ]


# --- Generate the Invoice ------------------------------------------------------------------------


def check_period_started(period_start: date | None, now: datetime) -> None:
    """Refuse to generate the invoice of a period that has not started."""
    if period_start is not None and period_start > now.date():
        raise ValidationFailed(
            _(
                "The period starting %(date)s has not started yet: its invoice can be generated"
                " from that day.",
                date=format_day(period_start),
            ),
            field="period",
        )


def invoice_of_period(db: Session, *, account_id: int, period_start: date) -> Invoice | None:
    return db.scalar(
        select(Invoice).where(
            Invoice.account_id == account_id, Invoice.period_start == period_start
        )
    )


@dataclass
class GenerateResult:
    account: Account
    made: list[Invoice] = field(default_factory=list)
    error: str = ""

    @property
    def numbers(self) -> list[str]:
        return [invoices.invoice_number(invoice) for invoice in self.made]


def generate_for(
    db: Session, *, account: Account, actor_user_id: int | None, now: datetime
) -> GenerateResult:
    """Generate the account's due invoices without sending them (sending is the next stage)."""
    try:
        made = invoices.generate_for_account(db, account_id=account.id, now=now, send=False)
    except DomainError as exc:
        db.rollback()
        return GenerateResult(account, error=exc.message)
    except Exception:
        # One account's unexpected failure must not stop the batch; it is logged for us.
        db.rollback()
        log.exception("generating the invoices of account %s failed", account.id)
        return GenerateResult(account, error=_("Generating failed unexpectedly; it was logged."))
    if made:
        _audit(db, actor_user_id, account, "invoices.generate", {"invoices": _numbers(made)})
    return GenerateResult(account, made)


def generate_batch(
    db: Session, *, scoped_accounts: Select, actor_user_id: int | None, now: datetime
) -> list[GenerateResult]:
    """Generate the Invoice of every due account in scope, one account at a time."""
    results = []
    for account_id in due_account_ids(db, scoped_accounts=scoped_accounts, now=now):
        account = db.get(Account, account_id)
        results.append(generate_for(db, account=account, actor_user_id=actor_user_id, now=now))
    return results


def _numbers(made: list[Invoice]) -> list[str]:
    return [invoices.invoice_number(invoice) for invoice in made]


def _audit(db, actor_user_id, account: Account, action: str, after: dict, object_id=None):
    audit.record(
        db,
        actor_user_id=actor_user_id,
        reseller_id=account.reseller_id,
        action=action,
        object_type="invoice" if object_id is not None else "account",
        object_id=object_id if object_id is not None else account.id,
        after=after,
    )
    db.commit()


# --- Send out the Invoice -----------------------------------------------------------------------


def send_one(
    db: Session, *, invoice: Invoice, resend: bool, actor_user_id: int | None, now: datetime
) -> str:
    """Send out (or resend) one invoice through the outbox; commits; returns the message."""
    account = lock_account(db, invoice.account_id)  # one sender at a time per account
    invoice = db.get(Invoice, invoice.id, populate_existing=True)
    if invoice.sent_at is not None and not resend and invoice.status != InvoiceStatus.VOID:
        db.rollback()
        raise ValidationFailed(
            _(
                "Invoice %(invoice_number)s was already sent; resend it instead.",
                invoice_number=invoices.invoice_number(invoice),
            )
        )
    invoices.send_invoice(db, invoice=invoice, account=account, now=now, resend=resend)
    number = invoices.invoice_number(invoice)
    after = {"invoice": number, "to": account.email or "", "resend": resend}
    _audit(db, actor_user_id, account, "invoices.send", after, object_id=invoice.id)
    if not account.email:
        if resend:
            return _(
                "Invoice %(number)s resent: the customer has no email address, only a notice.",
                number=number,
            )
        return _(
            "Invoice %(number)s sent: the customer has no email address, only a notice.",
            number=number,
        )
    if resend:
        return _("Invoice %(number)s resent to %(email)s.", number=number, email=account.email)
    return _("Invoice %(number)s sent to %(email)s.", number=number, email=account.email)


@dataclass
class SendSummary:
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (number, message)


def unsent_ids(db: Session, *, scoped: Select) -> list[int]:
    stmt = scoped.where(Invoice.sent_at.is_(None), Invoice.status != InvoiceStatus.VOID)
    return list(db.scalars(stmt.with_only_columns(Invoice.id).order_by(Invoice.id)))


def send_unsent(
    db: Session, *, scoped: Select, actor_user_id: int | None, now: datetime
) -> SendSummary:
    """Send all unsent: every generated invoice in scope that has not gone out yet."""
    summary = SendSummary()
    for invoice_id in unsent_ids(db, scoped=scoped):
        invoice = db.get(Invoice, invoice_id)
        try:
            send_one(db, invoice=invoice, resend=False, actor_user_id=actor_user_id, now=now)
        except DomainError as exc:  # voided or sent by someone else meanwhile
            db.rollback()
            summary.failed.append((invoices.invoice_number(invoice), exc.message))
        else:
            summary.sent.append(invoices.invoice_number(invoice))
    return summary


# --- Void with a credit note ---------------------------------------------------------------------


def void(db: Session, *, invoice: Invoice, reason: str, actor_user_id: int | None) -> CreditNote:
    """Void the invoice with a numbered credit note, audited in the same transaction."""
    if invoice.status == InvoiceStatus.VOID:
        raise ValidationFailed(_("This invoice is already void."))
    audit.record(
        db,
        actor_user_id=actor_user_id,
        reseller_id=invoice.reseller_id,
        action="invoices.void",
        object_type="invoice",
        object_id=invoice.id,
        before={"invoice": invoices.invoice_number(invoice), "status": invoice.status.value},
        after={"status": "void", "reason": " ".join((reason or "").split())[:300]},
    )
    try:
        return invoices.void_invoice(
            db, invoice=invoice, reason=reason, actor_user_id=actor_user_id
        )
    except DomainError:
        db.rollback()  # the audit row goes with the refused change
        raise
