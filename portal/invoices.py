"""Billing: review billing details, generate the invoice, send it; collect and void.

The model (docs/billing.md): plan fees are paid in advance. At the start of each period
the plan fee of that period is debited (plans.charge_period_fee) and the invoice of the
period is issued: the fee of the period that starts, plus every billed debit since the
previous invoice (call usage, add-ons, plan-change prorations of the ended period). Every
line is a ledger debit that already happened, and each debit lies in exactly one
invoice's window, so nothing is billed twice. Prices include tax: the invoice shows the
tax share of its total. Prepaid invoices were paid by the balance as the debits happened;
postpaid invoices stay open (due after the net days) until payments are allocated to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import emails, ledger
from portal.domain import NotFound, ValidationFailed
from portal.i18n import _
from portal.models import (
    Account,
    BillingModel,
    CreditNote,
    EntryKind,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    LedgerEntry,
    PaymentAllocation,
    Subscription,
    SubscriptionStatus,
    UnallocatedPayment,
    utcnow,
)
from portal.numbering import take_number
from portal.plans import (
    MAX_CATCH_UP,
    BillingPeriod,
    billing_period,
    charge_period_fee,
    fee_key,
    period_fee_minor,
)
from portal.settings import get_setting

log = logging.getLogger(__name__)

# Debits billed on a prepaid invoice (a statement of the services the balance paid).
BILLED_KINDS = (EntryKind.USAGE, EntryKind.ADDON, EntryKind.PLAN_CHANGE)
# A postpaid balance is what is owed: every debit is billed (transfers out, refunds of card
# payments, admin debits, chargebacks too), so the open invoices always add up to it.
# Invoices that still expect money.
UNPAID = (InvoiceStatus.OPEN, InvoiceStatus.OVERDUE)

Period = BillingPeriod


@dataclass(frozen=True)
class Line:
    kind: str
    description: str
    amount_minor: int
    quantity: int = 1


@dataclass
class Draft:
    """What an invoice for a period says (the preview, or the invoice about to be stored)."""

    account: Account
    period: Period
    lines: list[Line] = field(default_factory=list)
    tax_rate_bp: int = 0
    due_now: bool = False  # the period has started and its invoice is not generated yet

    @property
    def total_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def tax_minor(self) -> int:
        return included_tax(self.total_minor, self.tax_rate_bp)

    @property
    def subtotal_minor(self) -> int:
        return self.total_minor - self.tax_minor


@dataclass(frozen=True)
class Allocation:
    allocated: list[tuple[Invoice, int]]
    unallocated_minor: int


# --- Periods ---------------------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def period_containing(anchor_day: int, day: date) -> Period:
    """The monthly billing period that contains `day` (SPEC 11 anchor rule)."""
    return billing_period(anchor_day, day)


def included_tax(total_minor: int, rate_bp: int) -> int:
    """The tax share of a tax-inclusive total (ROUND_HALF_EVEN)."""
    share = Decimal(total_minor) * rate_bp / (10000 + rate_bp)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _subscription(db: Session, account_id: int) -> Subscription | None:
    return db.scalar(
        select(Subscription).where(
            Subscription.account_id == account_id,
            Subscription.status == SubscriptionStatus.ACTIVE,
        )
    )


def _last_invoice(db: Session, account_id: int, before: date | None = None) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.account_id == account_id)
    if before is not None:
        stmt = stmt.where(Invoice.period_start < before)
    return db.scalar(stmt.order_by(Invoice.period_start.desc(), Invoice.id.desc()).limit(1))


def periods_due(db: Session, subscription: Subscription, now: datetime) -> list[Period]:
    """Periods that have started and have no invoice yet, oldest first (at most MAX_CATCH_UP)."""
    current = billing_period(subscription.anchor_day, now.date())
    last = _last_invoice(db, subscription.account_id)
    if last is not None:
        period = billing_period(subscription.anchor_day, last.period_end + timedelta(days=1))
    else:
        period = billing_period(subscription.anchor_day, subscription.started_on)
    due = []
    while period.start <= current.start and len(due) < MAX_CATCH_UP:
        due.append(period)
        period = billing_period(subscription.anchor_day, period.end)
    return due


# --- Review billing details ------------------------------------------------------------------


def _window(db: Session, account_id: int, period: Period) -> tuple[datetime | None, datetime]:
    """The debits an invoice for `period` lists: from where the previous invoice stopped."""
    previous = _last_invoice(db, account_id, before=period.start)
    if previous is None:
        start = None
    elif previous.billed_until is not None:
        start = previous.billed_until
    else:  # an invoice of the old model billed its own period in arrears
        start = _midnight(previous.period_end + timedelta(days=1))
    return start, _midnight(period.start)


def _service_lines(db: Session, account: Account, period: Period) -> list[Line]:
    account_id = account.id
    start, end = _window(db, account_id, period)
    in_window = [LedgerEntry.account_id == account_id, LedgerEntry.created_at < end]
    if start is not None:
        in_window.append(LedgerEntry.created_at >= start)
    usage_total, usage_count = db.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0), func.count()).where(
            *in_window, LedgerEntry.kind == EntryKind.USAGE
        )
    ).one()
    if account.billing_model == BillingModel.POSTPAID:
        kinds = LedgerEntry.kind.not_in([EntryKind.USAGE, EntryKind.PLAN_FEE])
    else:
        kinds = LedgerEntry.kind.in_(BILLED_KINDS[1:])
    others = db.scalars(
        select(LedgerEntry)
        .where(*in_window, kinds, LedgerEntry.amount_minor < 0)
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
    ).all()
    lines = [Line(str(e.kind), e.description, -e.amount_minor) for e in others]
    if usage_count:
        lines.append(Line("usage", "Call usage", -int(usage_total), int(usage_count)))
    return lines


def _fee_line(db: Session, account: Account, subscription: Subscription, period: Period) -> Line:
    """The period's plan fee: as debited, or (before the debit) as it would be debited now."""
    entry = ledger.find_entry(db, account.id, fee_key(period))
    if entry is not None:
        return Line("plan_fee", entry.description, -entry.amount_minor)
    amount = period_fee_minor(subscription, subscription.plan.price_minor, period)
    dates = f"{period.start:%d %b %Y} to {period.last_day:%d %b %Y}"
    return Line("plan_fee", f"{subscription.plan.name} plan, {dates} (in advance)", amount)


def _draft(db: Session, account: Account, subscription: Subscription, period: Period) -> Draft:
    lines = [_fee_line(db, account, subscription, period), *_service_lines(db, account, period)]
    return Draft(account, period, lines, _tax_rate(db))


def review_billing_details(db: Session, *, account: Account, now: datetime | None = None) -> Draft:
    """The coming invoice: the one due now if not generated yet, else the next period's so far."""
    now = now or utcnow()
    subscription = _subscription(db, account.id)
    if subscription is None:
        raise NotFound(_("There is no active subscription to bill."))
    due = periods_due(db, subscription, now)
    if due:
        draft = _draft(db, account, subscription, due[0])
        draft.due_now = True
        return draft
    current = billing_period(subscription.anchor_day, now.date())
    return _draft(db, account, subscription, billing_period(subscription.anchor_day, current.end))


def _tax_rate(db: Session) -> int:
    raw = get_setting(db, "tax_rate_bp")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) <= 10000 else 0


def _net_days(db: Session) -> int:
    raw = get_setting(db, "invoice_net_days")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) <= 365 else 14


# --- Generate and send ------------------------------------------------------------------------


def generate_due_invoices(db: Session, *, now: datetime | None = None) -> list[Invoice]:
    """Generate and send every invoice whose period has started (one per account and period)."""
    now = now or utcnow()
    account_ids = db.scalars(
        select(Subscription.account_id)
        .where(Subscription.status == SubscriptionStatus.ACTIVE)
        .order_by(Subscription.account_id)
    ).all()
    db.rollback()
    made = []
    for account_id in account_ids:
        try:
            made += generate_for_account(db, account_id=account_id, now=now)
        except Exception:  # one account's failure must not leave the others unbilled
            db.rollback()
            log.exception("billing run: account %s not billed; retried at the next run", account_id)
    return made


def generate_for_account(
    db: Session, *, account_id: int, now: datetime | None = None, send: bool = True
) -> list[Invoice]:
    """Generate the account's due invoices, oldest period first, each once; commits each.

    Returns the invoices made by this call: an empty list when they exist already (a second
    runner waits on the account lock, then finds them).
    """
    now = now or utcnow()
    made = []
    for _attempt in range(MAX_CATCH_UP):
        invoice = _generate_next(db, account_id=account_id, now=now, send=send)
        if invoice is None:
            break
        made.append(invoice)
    return made


def _generate_next(db: Session, *, account_id: int, now: datetime, send: bool) -> Invoice | None:
    account = ledger.lock_account(db, account_id)  # a second runner waits here, then skips
    subscription = _subscription(db, account_id)
    due = periods_due(db, subscription, now) if subscription is not None else []
    if not due:
        db.rollback()
        return None
    period = due[0]
    charge_period_fee(db, account=account, subscription=subscription, period=period, at=now)
    invoice = _store(db, _draft(db, account, subscription, period), now)
    _settle(db, account, invoice, now)
    if send:
        send_invoice(db, invoice=invoice, account=account, now=now)
    db.commit()
    return invoice


def _store(db: Session, draft: Draft, now: datetime) -> Invoice:
    account = draft.account
    postpaid = account.billing_model == BillingModel.POSTPAID
    invoice = Invoice(
        reseller_id=account.reseller_id,
        account_id=account.id,
        number=take_number(db, InvoiceCounter, account.reseller_id),
        period_start=draft.period.start,
        period_end=draft.period.last_day,
        currency=account.currency,
        subtotal_minor=draft.subtotal_minor,
        tax_rate_bp=draft.tax_rate_bp,
        tax_minor=draft.tax_minor,
        total_minor=draft.total_minor,
        paid_minor=0,
        status=InvoiceStatus.OPEN,
        issued_at=now,
        due_on=now.date() + timedelta(days=_net_days(db)) if postpaid else now.date(),
        billed_until=_midnight(draft.period.start),
    )
    invoice.lines = [
        InvoiceLine(
            kind=line.kind,
            description=line.description[:300],
            quantity=line.quantity,
            amount_minor=line.amount_minor,
        )
        for line in draft.lines
    ]
    db.add(invoice)
    db.flush()
    return invoice


def _settle(db: Session, account: Account, invoice: Invoice, now: datetime) -> None:
    if account.billing_model == BillingModel.PREPAID:
        # The balance already paid every line as it was debited.
        _allocate(db, invoice, invoice.total_minor, "Paid from the prepaid balance", now)
    else:
        _apply_unallocated(db, account, invoice, now)
    if invoice.paid_minor >= invoice.total_minor:
        invoice.status = InvoiceStatus.PAID


def send_invoice(
    db: Session, *, invoice: Invoice, account: Account, now: datetime, resend: bool = False
) -> None:
    """Email the invoice with a link and its PDF (through the outbox) and mark it sent."""
    if invoice.status == InvoiceStatus.VOID:
        raise ValidationFailed(_("A void invoice cannot be sent."))
    key = f"invoice:{invoice.id}" + (f":resend:{now.isoformat()}" if resend else "")
    emails.invoice_email(
        db, account=account, invoice=invoice, due_on=_due_shown(invoice), dedupe_key=key
    )
    invoice.sent_at = now


def _due_shown(invoice: Invoice):
    """The due date a postpaid invoice shows while something is owed (None otherwise)."""
    owed = invoice.total_minor > invoice.paid_minor
    return invoice.due_on if owed and invoice.due_on is not None else None


def invoice_number(invoice: Invoice) -> str:
    return f"INV-{invoice.reseller_id}-{invoice.number:06d}"


# --- Collection: overdue invoices and reminders ---------------------------------------------


def reminder_days(db: Session) -> list[int]:
    """Days after the due date on which a reminder goes out (setting "1, 7, 14")."""
    days = set()
    for part in get_setting(db, "invoice_reminder_days").split(","):
        part = part.strip()
        if part.isascii() and part.isdigit() and int(part) <= 365:
            days.add(int(part))
    return sorted(days)


def collect_overdue(db: Session, *, now: datetime | None = None) -> int:
    """Mark unpaid invoices past their due date overdue and send the reminders reached.

    A reminder goes out once for each configured day reached; a run that was missed
    sends only the latest reminder reached. Commits each invoice. Returns the emails queued.
    """
    now = now or utcnow()
    today, days = now.date(), reminder_days(db)
    candidates = db.execute(
        select(Invoice.id, Invoice.account_id)
        .where(Invoice.status.in_(UNPAID), Invoice.due_on < today)
        .order_by(Invoice.id)
    ).all()
    db.rollback()
    queued = 0
    for invoice_id, account_id in candidates:
        account = ledger.lock_account(db, account_id)
        invoice = db.get(Invoice, invoice_id, populate_existing=True)
        if invoice.status in UNPAID and invoice.paid_minor < invoice.total_minor:
            queued += _remind(db, account, invoice, today, days)
        db.commit()
    return queued


def _remind(db: Session, account: Account, invoice: Invoice, today: date, days: list[int]) -> int:
    invoice.status = InvoiceStatus.OVERDUE
    reached = [d for d in days if d <= (today - invoice.due_on).days]
    if invoice.reminders_sent >= len(reached):
        return 0
    invoice.reminders_sent = len(reached)
    sent = emails.reminder_email(
        db,
        account=account,
        invoice=invoice,
        due_on=invoice.due_on,
        dedupe_key=f"invoice-reminder:{invoice.id}:{reached[-1]}",
    )
    return int(sent)


# --- Void with a credit note -----------------------------------------------------------------


def void_invoice(
    db: Session, *, invoice: Invoice, reason: str, actor_user_id: int | None, now=None
) -> CreditNote:
    """Void an invoice with a numbered credit note; commits. Both are immutable afterwards.

    The credit note gives back the invoice's total as a ledger credit (the debits it billed
    are cancelled), and what had been paid on it becomes an unallocated payment for the
    next invoices. The caller loads `invoice` through its tenant scope.
    """
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationFailed(_("Give a reason for the credit note."), field="reason")
    if len(reason) > 300:
        raise ValidationFailed(_("Keep the reason under 300 characters."), field="reason")
    now = now or utcnow()
    account = ledger.lock_account(db, invoice.account_id)
    invoice = db.get(Invoice, invoice.id, populate_existing=True)
    if invoice.status == InvoiceStatus.VOID:
        db.rollback()
        raise ValidationFailed(_("This invoice is already void."))
    number = take_number(db, InvoiceCounter, invoice.reseller_id, column="last_credit_note")
    note = CreditNote(
        reseller_id=invoice.reseller_id,
        account_id=invoice.account_id,
        invoice_id=invoice.id,
        number=number,
        amount_minor=invoice.total_minor,
        currency=invoice.currency,
        reason=reason,
        actor_user_id=actor_user_id,
        created_at=now,
    )
    db.add(note)
    if invoice.total_minor:
        ledger.post_entry(
            db,
            account_id=account.id,
            account=account,
            kind=EntryKind.CREDIT_NOTE,
            amount_minor=invoice.total_minor,
            description=f"Credit note {credit_note_number(note)} for {invoice_number(invoice)}",
            idempotency_key=f"credit-note:{invoice.id}",
            actor_user_id=actor_user_id,
            at=now,
        )
    invoice.status = InvoiceStatus.VOID
    if invoice.paid_minor and account.billing_model == BillingModel.POSTPAID:
        # What was paid on it pays the oldest open invoices; the rest waits for the next.
        source = f"Paid on {invoice_number(invoice)}, voided"
        allocate_payment(db, account=account, amount_minor=invoice.paid_minor, source=source)
    db.commit()
    return note


def credit_note_number(note: CreditNote) -> str:
    return f"CN-{note.reseller_id}-{note.number:06d}"


def credit_note_for(db: Session, invoice_id: int) -> CreditNote | None:
    return db.scalar(select(CreditNote).where(CreditNote.invoice_id == invoice_id))


# --- Payments against invoices ---------------------------------------------------------------


def _allocate(db: Session, invoice: Invoice, amount_minor: int, source: str, now: datetime):
    invoice.paid_minor += amount_minor
    if invoice.paid_minor >= invoice.total_minor:
        invoice.status = InvoiceStatus.PAID
    db.add(
        PaymentAllocation(
            invoice_id=invoice.id, amount_minor=amount_minor, source=source[:200], created_at=now
        )
    )


def _apply_unallocated(db: Session, account: Account, invoice: Invoice, now: datetime) -> None:
    leftovers = db.scalars(
        select(UnallocatedPayment)
        .where(UnallocatedPayment.account_id == account.id, UnallocatedPayment.remaining_minor > 0)
        .order_by(UnallocatedPayment.id)
        .with_for_update()
    ).all()
    for leftover in leftovers:
        due = invoice.total_minor - invoice.paid_minor
        if due <= 0:
            break
        part = min(due, leftover.remaining_minor)
        leftover.remaining_minor -= part
        _allocate(db, invoice, part, f"Unallocated payment #{leftover.id}: {leftover.source}", now)


def allocate_payment(
    db: Session,
    *,
    account: Account,
    amount_minor: int,
    source: str,
    first_invoice_id: int | None = None,
) -> Allocation:
    """Allocate a payment to the oldest open invoices; the rest becomes an unallocated payment.

    A payment made for one invoice (Pay now) goes to that invoice first.

    Bookkeeping only (the payment's ledger credit is posted by its caller). The caller
    holds the account lock and commits.
    """
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValueError("amount_minor must be a positive int")
    now = utcnow()
    remaining, allocated = amount_minor, []
    unpaid = _open_invoices(db, account.id)
    unpaid.sort(key=lambda invoice: invoice.id != first_invoice_id)  # stable: oldest next
    for invoice in unpaid:
        part = min(remaining, invoice.total_minor - invoice.paid_minor)
        if part <= 0:
            continue
        _allocate(db, invoice, part, source, now)
        allocated.append((invoice, part))
        remaining -= part
        if remaining == 0:
            break
    if remaining:
        db.add(
            UnallocatedPayment(
                account_id=account.id,
                amount_minor=remaining,
                remaining_minor=remaining,
                currency=account.currency,
                source=source[:200],
                created_at=now,
            )
        )
    db.flush()
    return Allocation(allocated, remaining)


def settle_credit(db: Session, *, account: Account, amount_minor: int, source: str) -> None:
    """A credit to a postpaid balance (voucher, transfer in, admin credit) pays its invoices.

    The caller holds the account lock and commits. Prepaid credits settle nothing.
    """
    if account.billing_model == BillingModel.POSTPAID and amount_minor > 0:
        allocate_payment(db, account=account, amount_minor=amount_minor, source=source)


def _open_invoices(db: Session, account_id: int) -> list[Invoice]:
    return list(
        db.scalars(
            select(Invoice)
            .where(Invoice.account_id == account_id, Invoice.status.in_(UNPAID))
            .order_by(Invoice.period_start, Invoice.id)
            .with_for_update()
        )
    )


# --- Reading ------------------------------------------------------------------------------------


def invoices_for(db: Session, account_id: int) -> list[Invoice]:
    """The account's invoices, newest first."""
    return list(
        db.scalars(
            select(Invoice)
            .where(Invoice.account_id == account_id)
            .order_by(Invoice.period_start.desc(), Invoice.id.desc())
        )
    )


def get_invoice(db: Session, *, account_id: int, invoice_id: int) -> Invoice:
    """One invoice of the account; another account's id raises NotFound."""
    if not 0 < invoice_id < 2**63:  # larger ids cannot exist (and SQLite cannot bind them)
        raise NotFound(_("No such invoice."))
    invoice = db.scalar(
        select(Invoice).where(Invoice.id == invoice_id, Invoice.account_id == account_id)
    )
    if invoice is None:
        raise NotFound(_("No such invoice."))
    return invoice


def unallocated_minor(db: Session, account_id: int) -> int:
    """Money paid beyond the open invoices, waiting for the next invoice."""
    return int(
        db.scalar(
            select(func.coalesce(func.sum(UnallocatedPayment.remaining_minor), 0)).where(
                UnallocatedPayment.account_id == account_id
            )
        )
    )


def allocations_of(db: Session, invoice_id: int) -> list[PaymentAllocation]:
    return list(
        db.scalars(
            select(PaymentAllocation)
            .where(PaymentAllocation.invoice_id == invoice_id)
            .order_by(PaymentAllocation.id)
        )
    )
