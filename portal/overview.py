"""The home pages: the customer's account at a glance and the admin overview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from portal import invoices as invoicing
from portal.domain import NotFound
from portal.history import HistoryFilter, history_page
from portal.ledger import available_funds, effective_credit_limit
from portal.models import (
    Account,
    BillingModel,
    EntryKind,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    utcnow,
)
from portal.payments.recharge_settings import current_settings

LATEST_ROWS = 5
DAYS = 30
NEAR_LIMIT_PERCENT = 80  # of the effective credit limit used
NEAR_LIMIT_ROWS = 10
TOPUP_KINDS = (EntryKind.TOPUP, EntryKind.AUTO_RECHARGE)
REDEMPTION_KINDS = (EntryKind.VOUCHER,)


@dataclass(frozen=True)
class CustomerHome:
    account: Account
    credit_limit: int
    available: int
    next_invoice: invoicing.Draft | None
    unpaid: list[Invoice]  # open and overdue invoices, oldest first
    auto_topup: object  # AutoRechargeSetting (stored, or unsaved defaults)
    latest: list[LedgerEntry]

    @property
    def unpaid_minor(self) -> int:
        return sum(invoice.total_minor - invoice.paid_minor for invoice in self.unpaid)

    @property
    def overdue(self) -> list[Invoice]:
        return [invoice for invoice in self.unpaid if invoice.status == InvoiceStatus.OVERDUE]


def customer_home(db: Session, *, account: Account) -> CustomerHome:
    """Balance, available funds, the next invoice, automatic top-up and the latest activity."""
    try:
        draft = invoicing.review_billing_details(db, account=account)
    except NotFound:
        draft = None
    unpaid = list(
        db.scalars(
            select(Invoice)
            .where(Invoice.account_id == account.id, Invoice.status.in_(invoicing.UNPAID))
            .order_by(Invoice.period_start, Invoice.id)
        )
    )
    latest = history_page(db, account.id, HistoryFilter(), limit=LATEST_ROWS).entries
    return CustomerHome(
        account=account,
        credit_limit=effective_credit_limit(account),
        available=available_funds(account),
        next_invoice=draft,
        unpaid=unpaid,
        auto_topup=current_settings(db, account=account),
        latest=latest,
    )


@dataclass(frozen=True)
class NearLimit:
    account: Account
    limit_minor: int
    used_minor: int

    @property
    def percent(self) -> int:
        return min(self.used_minor * 100 // max(self.limit_minor, 1), 999)


@dataclass(frozen=True)
class AdminOverview:
    counts: dict[str, int]
    topups: list[tuple[date, int]]  # per day, the last DAYS days
    redemptions: list[tuple[date, int]]
    near_limit: list[NearLimit]

    @property
    def topups_total(self) -> int:
        return sum(value for _, value in self.topups)

    @property
    def redemptions_total(self) -> int:
        return sum(value for _, value in self.redemptions)


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # SQLite answers text


def _per_day(db: Session, accounts: Select, kinds, since: datetime, days: list[date]):
    day = func.date(LedgerEntry.created_at)
    stmt = (
        select(day, func.count(LedgerEntry.id))
        .where(
            LedgerEntry.account_id.in_(accounts),
            LedgerEntry.kind.in_(kinds),
            LedgerEntry.amount_minor > 0,
            LedgerEntry.created_at >= since,
        )
        .group_by(day)
    )
    counts = {_as_date(d): int(n) for d, n in db.execute(stmt)}
    return [(d, counts.get(d, 0)) for d in days]


def _near_limit(db: Session, accounts: Select, now: datetime) -> list[NearLimit]:
    # Used >= 80% of the effective limit implies used >= 80% of the permanent one (a valid
    # temporary increase only raises it): the database narrows, Python decides exactly.
    candidates = db.scalars(
        select(Account)
        .where(
            Account.id.in_(accounts),
            Account.billing_model == BillingModel.POSTPAID,
            Account.balance_minor < 0,
            -Account.balance_minor * 100 >= Account.credit_limit_minor * NEAR_LIMIT_PERCENT,
        )
        .order_by(Account.balance_minor)
        .limit(500)
    )
    rows = []
    for account in candidates:
        limit = effective_credit_limit(account, now)
        used = -account.balance_minor
        if used * 100 >= limit * NEAR_LIMIT_PERCENT:
            rows.append(NearLimit(account, limit, used))
    rows.sort(key=lambda row: (-row.percent, row.account.name))
    return rows[:NEAR_LIMIT_ROWS]


def admin_overview(
    db: Session, *, accounts: Select, counts: dict[str, int], now: datetime | None = None
) -> AdminOverview:
    """`accounts`: the ids of the admin's accounts (tenant-scoped by the caller)."""
    now = now or utcnow()
    today = now.date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
    return AdminOverview(
        counts=counts,
        topups=_per_day(db, accounts, TOPUP_KINDS, since, days),
        redemptions=_per_day(db, accounts, REDEMPTION_KINDS, since, days),
        near_limit=_near_limit(db, accounts, now),
    )
