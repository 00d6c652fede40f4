"""Plans: billing periods, proration, plan changes, the plan license and add-ons.

Money moves only through portal.ledger: an upgrade debits the balance, a downgrade
grants reserve credit, an add-on is paid from reserve credit first and then the balance.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import emails, ledger
from portal.domain import DomainError, NotFound, ValidationFailed
from portal.i18n import _, format_amount
from portal.models import (
    Account,
    AccountAddOn,
    AddOn,
    EntryKind,
    GrantStatus,
    LedgerEntry,
    LicenseUsage,
    Plan,
    ReserveGrant,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from portal.money import format_money

MAX_ADDON_QUANTITY = 100
# A subscription left without a billing run for longer catches up at most this many periods.
MAX_CATCH_UP = 24
_MAX_ID = 2**63 - 1  # larger ids cannot exist (and SQLite refuses to bind them)


class PlanChangeRefused(DomainError):
    """A plan change that cannot happen (funds, limits, no subscription)."""


class PurchaseRefused(DomainError):
    """An add-on purchase that cannot be paid."""


# --- Billing period and proration ------------------------------------------------------


@dataclass(frozen=True)
class BillingPeriod:
    start: date
    end: date  # exclusive: the next period starts here

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def days_left(self, today: date) -> int:
        """Whole days from today (included) to the end of the period."""
        return (self.end - today).days


def anchor_date(year: int, month: int, anchor_day: int) -> date:
    """The anchor day in that month, clamped to the month's last day (31 -> 28 Feb)."""
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def billing_period(anchor_day: int, today: date) -> BillingPeriod:
    """The monthly period containing `today`, anchored on `anchor_day`."""
    this_month = anchor_date(today.year, today.month, anchor_day)
    if this_month <= today:
        start = this_month
        end = anchor_date(*_shift_month(today.year, today.month, 1), anchor_day)
    else:
        start = anchor_date(*_shift_month(today.year, today.month, -1), anchor_day)
        end = this_month
    return BillingPeriod(start, end)


def divide_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to an integer, ties to even (integers only)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def prorate(amount_minor: int, days_left: int, days_in_period: int) -> int:
    """amount x days_left / days_in_period, rounded half-even to the minor unit."""
    return divide_half_even(amount_minor * days_left, days_in_period)


def fee_key(period: BillingPeriod) -> str:
    """The idempotency key of a period's plan fee: one fee per period, however often asked."""
    return f"plan-fee:{period.start.isoformat()}"


def period_fee_minor(subscription: Subscription, price_minor: int, period: BillingPeriod) -> int:
    """The fee of a period: the monthly price, prorated when the subscription starts inside it."""
    if subscription.started_on <= period.start:
        return price_minor
    if subscription.started_on >= period.end:
        return 0  # not subscribed yet
    return prorate(price_minor, period.days_left(subscription.started_on), period.days)


def charge_period_fee(
    db: Session,
    *,
    account: Account,
    subscription: Subscription,
    period: BillingPeriod,
    at: datetime | None = None,
) -> LedgerEntry | None:
    """Debit the plan fee of `period` in advance, at the plan in force now, exactly once.

    Called at the period start (by the billing run) and before any plan change (so a
    change made before the run is prorated against the fee actually taken). Always posts
    an entry, even of 0, so the fee of the period is settled once and for all. None when
    the subscription had not started by the end of the period. The caller holds the
    account lock and commits.
    """
    existing = ledger.find_entry(db, account.id, fee_key(period))
    if existing is not None or period.end <= subscription.started_on:
        return existing
    plan = subscription.plan
    dates = f"{period.start:%d %b %Y} to {period.last_day:%d %b %Y}"
    return ledger.post_entry(
        db,
        account_id=account.id,
        account=account,
        kind=EntryKind.PLAN_FEE,
        amount_minor=-period_fee_minor(subscription, plan.price_minor, period),
        description=f"{plan.name} plan, {dates} (in advance)",
        idempotency_key=fee_key(period),
        reference=f"period {period.start.isoformat()}",
        at=at,
    ).entry


def charge_fees_due(
    db: Session,
    *,
    account: Account,
    subscription: Subscription,
    today: date,
    at: datetime | None = None,
) -> None:
    """Take every started period's fee not taken yet (at most MAX_CATCH_UP), oldest first.

    Before a plan change: if the billing run has not taken this period's fee (or, after an
    outage, several), they are taken at the plan in force during them, the current one.
    """
    missing = []
    period = billing_period(subscription.anchor_day, today)
    while (
        len(missing) < MAX_CATCH_UP
        and period.end > subscription.started_on
        and ledger.find_entry(db, account.id, fee_key(period)) is None
    ):
        missing.append(period)
        period = billing_period(subscription.anchor_day, period.start - timedelta(days=1))
    for period in reversed(missing):
        charge_period_fee(db, account=account, subscription=subscription, period=period, at=at)


def add_one_month(moment: datetime) -> datetime:
    """The same moment one calendar month later (31 Jan -> 28/29 Feb)."""
    year, month = _shift_month(moment.year, moment.month, 1)
    return moment.replace(year=year, month=month, day=anchor_date(year, month, moment.day).day)


# --- Licenses --------------------------------------------------------------------------


@dataclass(frozen=True)
class LicenseRow:
    service: str
    label: str
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def over(self) -> bool:
        return self.used > self.limit

    @property
    def bar_max(self) -> int:
        # A <progress> with max 0 is meaningless; an unused 0 limit shows an empty bar.
        return max(self.limit, self.used, 1)


@dataclass(frozen=True)
class LicenseViolation:
    label: str
    used: int
    limit: int
    plan_name: str

    @property
    def message(self) -> str:
        return _(
            "You use %(used)s %(label)s; %(plan)s allows %(limit)s.",
            used=self.used,
            label=self.label,
            plan=self.plan_name,
            limit=self.limit,
        )


def get_subscription(db: Session, account: Account) -> Subscription | None:
    """The account's active subscription, if it has one."""
    return db.scalar(
        select(Subscription).where(
            Subscription.account_id == account.id,
            Subscription.status == SubscriptionStatus.ACTIVE,
        )
    )


def _usage(db: Session, account_id: int) -> dict[str, int]:
    rows = db.execute(
        select(LicenseUsage.service, LicenseUsage.used).where(LicenseUsage.account_id == account_id)
    )
    return {service: used for service, used in rows}


def _addon_units(db: Session, account_id: int) -> dict[str, int]:
    rows = db.execute(
        select(AddOn.service, func.sum(AddOn.units * AccountAddOn.quantity))
        .join(AccountAddOn, AccountAddOn.addon_id == AddOn.id)
        .where(AccountAddOn.account_id == account_id)
        .group_by(AddOn.service)
    )
    return {service: int(units or 0) for service, units in rows}


def _rows_for_plan(db: Session, account_id: int, plan: Plan) -> list[LicenseRow]:
    usage, extra = _usage(db, account_id), _addon_units(db, account_id)
    return [
        LicenseRow(
            service=lic.service,
            label=lic.label,
            limit=lic.limit + extra.get(lic.service, 0),
            used=usage.get(lic.service, 0),
        )
        for lic in plan.licenses
    ]


def license_rows(db: Session, account: Account) -> list[LicenseRow]:
    """Label, Limit (plan + add-ons), Used and Remaining for each service of the plan."""
    subscription = get_subscription(db, account)
    if subscription is None:
        return []
    return _rows_for_plan(db, account.id, subscription.plan)


def license_violations(db: Session, account: Account, plan: Plan) -> list[LicenseViolation]:
    """Services whose current usage exceeds what `plan` (plus bought add-ons) allows."""
    return [
        LicenseViolation(row.label, row.used, row.limit, plan.name)
        for row in _rows_for_plan(db, account.id, plan)
        if row.over
    ]


# --- Plan change -----------------------------------------------------------------------


@dataclass(frozen=True)
class PlanChangePreview:
    current_plan: Plan
    new_plan: Plan
    period: BillingPeriod
    days_left: int
    charge_minor: int  # taken from the balance now (upgrade)
    reserve_minor: int  # granted as reserve credit (downgrade)
    violations: list[LicenseViolation]
    currency: str

    @property
    def days_in_period(self) -> int:
        return self.period.days

    @property
    def direction(self) -> str:
        difference = self.new_plan.price_minor - self.current_plan.price_minor
        return "upgrade" if difference > 0 else "downgrade" if difference < 0 else "same price"

    @property
    def days_shown(self) -> str:
        """`days_in_words` in the reader's language (ledger descriptions keep the English)."""
        return _("%(left)s of %(total)s days left", left=self.days_left, total=self.days_in_period)

    @property
    def days_in_words(self) -> str:
        return f"{self.days_left} of {self.days_in_period} days left"

    @property
    def formula_in_words(self) -> str:
        """E.g. '(£45.00 - £25.00) x 12 of 30 days left = £8.00'."""
        high, low = sorted((self.new_plan.price_minor, self.current_plan.price_minor))[::-1]
        amount = self.charge_minor or self.reserve_minor
        return (
            f"({format_amount(high, self.currency)} - {format_amount(low, self.currency)})"
            f" \u00d7 {self.days_shown} = {format_amount(amount, self.currency)}"
        )

    @property
    def allowed(self) -> bool:
        return not self.violations

    @property
    def terms(self) -> str:
        """What the customer confirms: the period, the days and the amounts shown."""
        return (
            f"{self.period.start.isoformat()}/{self.days_left}/{self.new_plan.id}"
            f"/{self.charge_minor}/{self.reserve_minor}"
        )


@dataclass(frozen=True)
class PlanChangeResult:
    preview: PlanChangePreview
    grant: ReserveGrant | None
    replayed: bool = False


def list_plans(db: Session, account: Account) -> list[Plan]:
    """Active plans in the account's currency, in display order."""
    return list(
        db.scalars(
            select(Plan)
            .where(Plan.active.is_(True), Plan.currency == account.currency)
            .order_by(Plan.sort_order, Plan.price_minor, Plan.id)
        )
    )


def _plan_for(db: Session, account: Account, plan_id: int) -> Plan:
    plan = db.get(Plan, plan_id) if 0 < plan_id <= _MAX_ID else None
    if plan is None or not plan.active or plan.currency != account.currency:
        raise NotFound(_("That plan is not available."), field="plan_id")
    return plan


def preview_plan_change(
    db: Session, *, account: Account, plan_id: int, today: date | None = None
) -> PlanChangePreview:
    """What changing to `plan_id` today would cost or grant, and what would block it."""
    subscription = get_subscription(db, account)
    if subscription is None:
        raise PlanChangeRefused(_("Your account has no plan yet; ask your provider to set one up."))
    new_plan = _plan_for(db, account, plan_id)
    if new_plan.id == subscription.plan_id:
        raise ValidationFailed(
            _("You are already on %(name)s.", name=new_plan.name), field="plan_id"
        )
    today = today or utcnow().date()
    period = billing_period(subscription.anchor_day, today)
    days_left = period.days_left(today)
    difference = new_plan.price_minor - subscription.plan.price_minor
    amount = prorate(abs(difference), days_left, period.days)
    return PlanChangePreview(
        current_plan=subscription.plan,
        new_plan=new_plan,
        period=period,
        days_left=days_left,
        charge_minor=amount if difference > 0 else 0,
        reserve_minor=amount if difference < 0 else 0,
        violations=license_violations(db, account, new_plan),
        currency=account.currency,
    )


def _replayed_change(db: Session, account: Account, idempotency_key: str) -> bool:
    if ledger.find_entry(db, account.id, idempotency_key) is not None:
        return True
    return (
        db.scalar(
            select(ReserveGrant.id).where(
                ReserveGrant.account_id == account.id,
                ReserveGrant.idempotency_key == idempotency_key,
            )
        )
        is not None
    )


def change_plan(
    db: Session,
    *,
    account: Account,
    plan_id: int,
    actor_user_id: int | None,
    idempotency_key: str,
    now: datetime | None = None,
    confirmed_terms: str | None = None,
) -> PlanChangeResult:
    """Switch the plan now: charge an upgrade, grant reserve credit for a downgrade. Commits.

    The period's fee is taken first (at the old plan) if the billing run has not taken it
    yet, so the change is prorated against what was actually paid for the period.
    """
    now = now or utcnow()
    try:
        locked = ledger.lock_account(db, account.id)
        if _replayed_change(db, locked, idempotency_key):
            db.rollback()
            raise PlanChangeRefused(_("This plan change has already been made."))
        preview = preview_plan_change(db, account=locked, plan_id=plan_id, today=now.date())
        if preview.violations:
            raise PlanChangeRefused(" ".join(v.message for v in preview.violations))
        if confirmed_terms is not None and confirmed_terms != preview.terms:
            raise PlanChangeRefused(
                _(
                    "The terms changed since your preview (a new day or billing period began)."
                    " Check the new preview and confirm again."
                )
            )
        subscription = get_subscription(db, locked)
        charge_fees_due(db, account=locked, subscription=subscription, today=now.date(), at=now)
        grant = _settle_change(db, locked, preview, actor_user_id, idempotency_key, now)
        # Assign the relationship (not just the id) so this session sees the new limits at once.
        subscription.plan = preview.new_plan
        emails.plan_change_email(
            db,
            account=locked,
            old_plan=preview.current_plan.name,
            new_plan=preview.new_plan.name,
            charge_minor=preview.charge_minor,
            reserve_minor=preview.reserve_minor,
            dedupe_key=f"plan-change:{locked.id}:{idempotency_key}"[:120],
        )
        db.commit()
    except DomainError:
        db.rollback()
        raise
    return PlanChangeResult(preview, grant)


def _settle_change(
    db, account, preview, actor_user_id, idempotency_key, now
) -> ReserveGrant | None:
    change = f"from {preview.current_plan.name} to {preview.new_plan.name}"
    if preview.charge_minor:
        try:
            ledger.post_entry(
                db,
                account_id=account.id,
                account=account,
                kind=EntryKind.PLAN_CHANGE,
                amount_minor=-preview.charge_minor,
                description=f"Upgrade {change} ({preview.days_in_words})",
                idempotency_key=idempotency_key,
                actor_user_id=actor_user_id,
                require_funds=True,
                at=now,
            )
        except ledger.InsufficientFunds as exc:
            raise PlanChangeRefused(
                _(
                    "Your available funds (%(available)s) do not cover the %(charge)s"
                    " upgrade charge. Add credit first.",
                    available=format_amount(exc.available_minor, account.currency),
                    charge=format_amount(preview.charge_minor, account.currency),
                )
            ) from exc
    if not preview.reserve_minor:
        return None
    return ledger.grant_reserve(
        db,
        account=account,
        amount_minor=preview.reserve_minor,
        source=f"Downgrade {change}",
        expires_at=add_one_month(now),
        idempotency_key=idempotency_key,
        at=now,
    )


# --- Add-ons ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AddOnPurchase:
    addon: AddOn
    quantity: int
    total_minor: int
    from_reserve_minor: int
    from_balance_minor: int
    replayed: bool = False


def list_addons(db: Session, account: Account) -> list[AddOn]:
    """Add-ons an account can buy (active, in its currency)."""
    return list(
        db.scalars(
            select(AddOn)
            .where(AddOn.active.is_(True), AddOn.currency == account.currency)
            .order_by(AddOn.label, AddOn.id)
        )
    )


def _addon_for(db: Session, account: Account, addon_id: int) -> AddOn:
    addon = db.get(AddOn, addon_id) if 0 < addon_id <= _MAX_ID else None
    if addon is None or not addon.active or addon.currency != account.currency:
        raise NotFound(_("That add-on is not available."))
    return addon


def usable_reserve_minor(db: Session, account: Account, now: datetime | None = None) -> int:
    """Reserve credit that can still be spent (active and unexpired grants)."""
    return sum(grant.remaining_minor for grant in ledger.usable_reserve(db, account.id, now))


def buy_addon(
    db: Session,
    *,
    account: Account,
    addon_id: int,
    quantity: int,
    actor_user_id: int | None,
    idempotency_key: str,
    now: datetime | None = None,
) -> AddOnPurchase:
    """Buy add-on units: reserve credit first (soonest-expiring), then balance. Commits."""
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_ADDON_QUANTITY:
        message = _("Enter a quantity from 1 to %(max)s.", max=MAX_ADDON_QUANTITY)
        raise ValidationFailed(message, field="quantity")
    try:
        addon = _addon_for(db, account, addon_id)
        locked = ledger.lock_account(db, account.id)
        existing = ledger.find_entry(db, locked.id, idempotency_key)
        if existing is not None:
            db.rollback()
            return _replayed_purchase(addon, quantity, existing.amount_minor)
        purchase = _pay_addon(db, locked, addon, quantity, actor_user_id, idempotency_key, now)
        db.commit()
    except DomainError:
        db.rollback()
        raise
    return purchase


def _replayed_purchase(addon: AddOn, quantity: int, entry_amount_minor: int) -> AddOnPurchase:
    # A double submit: report the first purchase instead of buying twice.
    total = addon.price_minor * quantity
    from_balance = -entry_amount_minor
    return AddOnPurchase(addon, quantity, total, total - from_balance, from_balance, replayed=True)


def _pay_addon(
    db, account, addon, quantity, actor_user_id, idempotency_key, now=None
) -> AddOnPurchase:
    total = addon.price_minor * quantity
    from_reserve = min(total, usable_reserve_minor(db, account, now))
    from_balance = total - from_reserve
    available = ledger.available_funds(account)
    if available < from_balance:
        raise PurchaseRefused(
            _(
                "This costs %(total)s: reserve credit covers %(reserve)s and your available"
                " funds (%(available)s) do not cover the rest.",
                total=format_amount(total, account.currency),
                reserve=format_amount(from_reserve, account.currency),
                available=format_amount(available, account.currency),
            )
        )
    what = f"{addon.label} \u00d7 {quantity}"
    taken = ledger.consume_reserve(
        db, account=account, amount_minor=from_reserve, purpose=what, now=now
    )
    assert taken == from_reserve  # we hold the lock: nothing else spent it meanwhile
    # Always one ledger entry (possibly of 0): it records the purchase and its idempotency key.
    ledger.post_entry(
        db,
        account_id=account.id,
        account=account,
        kind=EntryKind.ADDON,
        amount_minor=-from_balance,
        description=f"Add-on {what} ({format_money(from_reserve, account.currency)}"
        " from reserve credit)",
        idempotency_key=idempotency_key,
        actor_user_id=actor_user_id,
        require_funds=True,
        at=now,
    )
    db.add(
        AccountAddOn(
            account_id=account.id, addon_id=addon.id, quantity=quantity, price_paid_minor=total
        )
    )
    db.flush()
    return AddOnPurchase(addon, quantity, total, from_reserve, from_balance)


# --- Reserve credit (read side) ----------------------------------------------------------


def grant_status(grant: ReserveGrant, now: datetime | None = None) -> str:
    """The status to show: an active grant past its expiry is expired even before the job runs."""
    now = now or utcnow()
    if grant.status == GrantStatus.ACTIVE and grant.expires_at <= now:
        return GrantStatus.EXPIRED.value
    return grant.status.value


def list_reserve_grants(db: Session, account: Account) -> list[ReserveGrant]:
    """The account's reserve credit grants, newest first."""
    return list(
        db.scalars(
            select(ReserveGrant)
            .where(ReserveGrant.account_id == account.id)
            .order_by(ReserveGrant.granted_at.desc(), ReserveGrant.id.desc())
        )
    )


def get_reserve_grant(db: Session, account: Account, grant_id: int) -> ReserveGrant:
    """One grant of this account (another account's id is simply not found)."""
    grant = db.get(ReserveGrant, grant_id) if 0 < grant_id <= _MAX_ID else None
    if grant is None or grant.account_id != account.id:
        raise NotFound(_("That reserve credit grant does not exist."))
    return grant
