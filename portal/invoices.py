"""Monthly billing cycle: review billing details, generate the invoice, send it; allocate payments.

Prices include tax: an invoice's total is what the balance was debited for the period
(plan fee, add-ons, plan changes, call usage) and its tax is the share of the total at
the server's tax rate. Prepaid invoices were paid by the balance as the debits happened;
postpaid invoices stay open until payments are allocated to them.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import emails, ledger
from portal.domain import NotFound
from portal.models import (
    Account,
    BillingModel,
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
from portal.settings import get_setting

# Debits of these kinds are billed services; top-ups, transfers and payments are not.
BILLED_KINDS = (EntryKind.USAGE, EntryKind.ADDON, EntryKind.PLAN_CHANGE)


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive: the next period's start

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def bounds(self) -> tuple[datetime, datetime]:
        return _midnight(self.start), _midnight(self.end)


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


def _anchor_date(year: int, month: int, anchor_day: int) -> date:
    # The anchor is clamped to the month's last day (31 -> 28 Feb).
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def period_containing(anchor_day: int, day: date) -> Period:
    """The monthly billing period that contains `day` (SPEC 11 anchor rule)."""
    year, month = day.year, day.month
    if _anchor_date(year, month, anchor_day) > day:
        year, month = _shift_month(year, month, -1)
    start = _anchor_date(year, month, anchor_day)
    return Period(start, _anchor_date(*_shift_month(year, month, 1), anchor_day))


def included_tax(total_minor: int, rate_bp: int) -> int:
    """The tax share of a tax-inclusive total (ROUND_HALF_EVEN)."""
    share = Decimal(total_minor) * rate_bp / (10000 + rate_bp)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# --- Review billing details ------------------------------------------------------------------


def _subscription(db: Session, account_id: int) -> Subscription | None:
    return db.scalar(
        select(Subscription).where(
            Subscription.account_id == account_id,
            Subscription.status == SubscriptionStatus.ACTIVE,
        )
    )


def _service_lines(db: Session, account_id: int, period: Period) -> list[Line]:
    start, end = period.bounds()
    in_period = (
        LedgerEntry.account_id == account_id,
        LedgerEntry.created_at >= start,
        LedgerEntry.created_at < end,
    )
    usage_total, usage_count = db.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0), func.count()).where(
            *in_period, LedgerEntry.kind == EntryKind.USAGE
        )
    ).one()
    others = db.scalars(
        select(LedgerEntry)
        .where(*in_period, LedgerEntry.kind.in_(BILLED_KINDS[1:]), LedgerEntry.amount_minor < 0)
        .order_by(LedgerEntry.id)
    ).all()
    lines = [Line(str(e.kind), e.description, -e.amount_minor) for e in others]
    if usage_count:
        lines.append(Line("usage", "Call usage", -int(usage_total), int(usage_count)))
    return lines


def _plan_fee_line(subscription: Subscription, period: Period) -> Line:
    plan = subscription.plan
    dates = f"{period.start:%d %b %Y} to {period.last_day:%d %b %Y}"
    return Line("plan_fee", f"{plan.name} plan, {dates}", plan.price_minor)


def review_billing_details(db: Session, *, account: Account, now: datetime | None = None) -> Draft:
    """Preview of the coming invoice: plan fee, add-ons and usage of the period so far."""
    subscription = _subscription(db, account.id)
    if subscription is None:
        raise NotFound("There is no active subscription to bill.")
    period = period_containing(subscription.anchor_day, (now or utcnow()).date())
    lines = [_plan_fee_line(subscription, period), *_service_lines(db, account.id, period)]
    return Draft(account, period, lines, _tax_rate(db))


def _tax_rate(db: Session) -> int:
    raw = get_setting(db, "tax_rate_bp")
    return int(raw) if raw.isdigit() and int(raw) <= 10000 else 0


# --- Generate and send ------------------------------------------------------------------------


def due_period(subscription: Subscription, now: datetime) -> Period | None:
    """The last period that ended, if the subscription existed during it."""
    current = period_containing(subscription.anchor_day, now.date())
    previous = period_containing(subscription.anchor_day, current.start - timedelta(days=1))
    return previous if previous.end > subscription.started_on else None


def generate_due_invoices(db: Session, *, now: datetime | None = None) -> list[Invoice]:
    """Generate and send every invoice whose period ended (one per account and period)."""
    now = now or utcnow()
    made = []
    subscriptions = db.scalars(
        select(Subscription)
        .where(Subscription.status == SubscriptionStatus.ACTIVE)
        .order_by(Subscription.account_id)
    ).all()
    for subscription in subscriptions:
        period = due_period(subscription, now)
        if period is None or _invoice_for(db, subscription.account_id, period) is not None:
            continue
        invoice = generate_invoice(db, account_id=subscription.account_id, period=period, now=now)
        if invoice is not None:
            made.append(invoice)
    return made


def _invoice_for(db: Session, account_id: int, period: Period) -> Invoice | None:
    return db.scalar(
        select(Invoice).where(
            Invoice.account_id == account_id, Invoice.period_start == period.start
        )
    )


def generate_invoice(
    db: Session, *, account_id: int, period: Period, now: datetime | None = None
) -> Invoice | None:
    """Generate, settle and send one period's invoice, once; commits. None if it exists."""
    now = now or utcnow()
    account = ledger.lock_account(db, account_id)  # a second runner waits here, then skips
    subscription = _subscription(db, account_id)
    if subscription is None or _invoice_for(db, account_id, period) is not None:
        db.rollback()
        return None
    draft = Draft(account, period, [], _tax_rate(db))
    draft.lines = [_charge_plan_fee(db, account, subscription, period)]
    draft.lines += _service_lines(db, account_id, period)
    invoice = _store(db, draft, now)
    _settle(db, account, invoice, now)
    send_invoice(db, invoice=invoice, account=account, now=now)
    db.commit()
    return invoice


def _charge_plan_fee(
    db: Session, account: Account, subscription: Subscription, period: Period
) -> Line:
    line = _plan_fee_line(subscription, period)
    if line.amount_minor:
        # The key makes the fee of a period a single debit, however often this runs.
        ledger.post_entry(
            db,
            account_id=account.id,
            account=account,
            kind=EntryKind.PLAN_FEE,
            amount_minor=-line.amount_minor,
            description=line.description,
            idempotency_key=f"plan-fee:{period.start.isoformat()}",
            reference=f"period {period.start.isoformat()}",
        )
    return line


def _next_number(db: Session, reseller_id: int) -> int:
    """The reseller's next invoice number, under the counter's row lock (no gaps)."""
    stmt = (
        select(InvoiceCounter)
        .where(InvoiceCounter.reseller_id == reseller_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    counter = db.scalar(stmt)
    if counter is None:
        try:
            with db.begin_nested():
                db.add(InvoiceCounter(reseller_id=reseller_id, last_number=0))
        except IntegrityError:
            pass  # another runner created it first
        counter = db.scalar(stmt)
    counter.last_number += 1
    return counter.last_number


def _store(db: Session, draft: Draft, now: datetime) -> Invoice:
    account = draft.account
    invoice = Invoice(
        reseller_id=account.reseller_id,
        account_id=account.id,
        number=_next_number(db, account.reseller_id),
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


def send_invoice(db: Session, *, invoice: Invoice, account: Account, now: datetime) -> None:
    """Email the invoice with a link and its PDF (through the outbox) and mark it sent."""
    emails.invoice_email(db, account=account, invoice=invoice)
    invoice.sent_at = now


def invoice_number(invoice: Invoice) -> str:
    return f"INV-{invoice.reseller_id}-{invoice.number:06d}"


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
    db: Session, *, account: Account, amount_minor: int, source: str
) -> Allocation:
    """Allocate a payment to the oldest open invoices; the rest becomes an unallocated payment.

    Bookkeeping only (the payment's ledger credit is posted by its caller). The caller
    holds the account lock and commits.
    """
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValueError("amount_minor must be a positive int")
    now = utcnow()
    remaining, allocated = amount_minor, []
    for invoice in _open_invoices(db, account.id):
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


def _open_invoices(db: Session, account_id: int) -> list[Invoice]:
    return list(
        db.scalars(
            select(Invoice)
            .where(Invoice.account_id == account_id, Invoice.status == InvoiceStatus.OPEN)
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
    invoice = db.scalar(
        select(Invoice).where(Invoice.id == invoice_id, Invoice.account_id == account_id)
    )
    if invoice is None:
        raise NotFound("No such invoice.")
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
