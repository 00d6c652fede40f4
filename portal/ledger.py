"""The ledger: the only code that changes an account's money.

Every change is an immutable LedgerEntry; the account's cached balance is updated in
the same transaction while the account row is locked. An idempotency key that was
already used on the account returns the first entry instead of moving money again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, true, update
from sqlalchemy.orm import Session

from portal.models import (
    Account,
    AccountStatus,
    AutoRechargeSetting,
    BillingModel,
    CustomerClass,
    EntryKind,
    GrantStatus,
    LedgerEntry,
    ReserveGrant,
    ReserveUse,
    utcnow,
)


class LedgerError(Exception):
    """Base class of the ledger's refusals."""


class InsufficientFunds(LedgerError):
    def __init__(self, available_minor: int, needed_minor: int):
        super().__init__("Available funds do not cover this amount.")
        self.available_minor = available_minor
        self.needed_minor = needed_minor


class CurrencyMismatch(LedgerError):
    pass


# session.info key: {account id: whether its funds went down} since the last commit.
FUNDS_CHANGED = "funds_changed"


def note_funds_changed(db: Session, account_id: int, *, decreased: bool = True) -> None:
    """Remember that an account's available funds changed in this transaction.

    After the commit the auto-recharge and warning checks run for it (portal.db listens
    for the commit). Also called for changes without a ledger entry (credit limits).
    """
    changed = db.info.setdefault(FUNDS_CHANGED, {})
    changed[account_id] = changed.get(account_id, False) or decreased


@dataclass(frozen=True)
class Posting:
    entry: LedgerEntry
    replayed: bool


def lock_account(db: Session, account_id: int) -> Account:
    """Load the account with a row lock (FOR UPDATE; SQLite serialises writers instead)."""
    # populate_existing: the identity map may hold a copy read before the lock.
    return db.execute(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def lock_accounts(db: Session, account_ids: list[int]) -> dict[int, Account]:
    """Lock several accounts in ascending id order, so crossing transfers never deadlock."""
    return {account_id: lock_account(db, account_id) for account_id in sorted(set(account_ids))}


def effective_credit_limit(account: Account, now: datetime | None = None) -> int:
    """Permanent limit plus a temporary increase that is still valid (never an expired one)."""
    if account.billing_model != BillingModel.POSTPAID:
        return 0
    now = now or utcnow()
    limit = account.credit_limit_minor
    valid = account.temp_increase_valid_until
    if valid is not None and now < valid:
        limit += temporary_increase_minor(account)
    return limit


def temporary_increase_minor(account: Account) -> int:
    if account.temp_increase_percent is not None:
        return max(account.credit_limit_minor, 0) * account.temp_increase_percent // 100
    return account.temp_increase_minor or 0


def available_funds(account: Account, now: datetime | None = None) -> int:
    """Prepaid: the balance. Postpaid: balance plus the effective credit limit."""
    return account.balance_minor + effective_credit_limit(account, now)


def find_entry(db: Session, account_id: int, idempotency_key: str) -> LedgerEntry | None:
    return db.scalar(
        select(LedgerEntry).where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.idempotency_key == idempotency_key,
        )
    )


def post_entry(
    db: Session,
    *,
    account_id: int,
    kind: EntryKind,
    amount_minor: int,
    description: str,
    idempotency_key: str,
    currency: str | None = None,
    reference: str = "",
    actor_user_id: int | None = None,
    require_funds: bool = False,
    account: Account | None = None,
    at: datetime | None = None,
) -> Posting:
    """Post one signed amount to an account. The caller commits.

    With require_funds, a debit is refused when available funds would go below zero.
    Pass `account` only when the caller already holds its lock; `at` is the entry's time
    when the caller acts for a given moment (a billing run), else now.
    """
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise TypeError("amount_minor must be an int")
    if account is None:
        account = lock_account(db, account_id)
    existing = find_entry(db, account_id, idempotency_key)
    if existing is not None:
        return Posting(existing, replayed=True)
    if currency is not None and currency != account.currency:
        raise CurrencyMismatch(f"The account is in {account.currency}, not {currency}.")
    if require_funds and amount_minor < 0:
        available = available_funds(account)
        if available + amount_minor < 0:
            raise InsufficientFunds(available, -amount_minor)
    account.balance_minor += amount_minor
    entry = LedgerEntry(
        account_id=account_id,
        kind=kind,
        amount_minor=amount_minor,
        balance_after_minor=account.balance_minor,
        currency=account.currency,
        description=description[:300],
        reference=reference[:120],
        actor_user_id=actor_user_id,
        idempotency_key=idempotency_key,
        created_at=at or utcnow(),
    )
    db.add(entry)
    db.flush()
    if kind != EntryKind.USAGE:
        # The switch's charges (debit_usage) queue their checks themselves, durably and
        # only when a threshold is reached (portal.usage, portal.jobs.queue_funds_check).
        note_funds_changed(db, account_id, decreased=amount_minor < 0)
    return Posting(entry, replayed=False)


# --- The switch's hot path: a usage debit in one statement ---------------------------------


@dataclass(frozen=True)
class FundsSnapshot:
    """The account's money fields right after a usage debit (duck-types Account for the
    funds helpers above; warning_thresholds is the effective list, class default included)."""

    id: int
    balance_minor: int
    currency: str
    billing_model: BillingModel
    credit_limit_minor: int
    temp_increase_minor: int | None
    temp_increase_percent: int | None
    temp_increase_valid_until: datetime | None
    warning_thresholds: str
    warnings_fired: str
    # The auto-recharge threshold when a recharge could start now (enabled, not backing off).
    recharge_threshold_minor: int | None


@dataclass(frozen=True)
class UsageDebit:
    entry_id: int
    funds: FundsSnapshot


_A = Account.__table__
_E = LedgerEntry.__table__
_S = AutoRechargeSetting.__table__
_C = CustomerClass.__table__


# The statements are built once, at import (module-level, like any constant): each charge
# only binds values, and SQLAlchemy keeps their compiled form (building them per call cost
# more CPU than the queries). Bound parameters: account, amount, now and the entry's e_*
# values (prefixed: an UPDATE would take a parameter named like an accounts column, such as
# created_at, as a value to SET).
_NOW = bindparam("now", type_=_A.c.temp_increase_valid_until.type)
_AMOUNT = bindparam("amount", type_=_A.c.balance_minor.type)
_PERMANENT = case((_A.c.credit_limit_minor > 0, _A.c.credit_limit_minor), else_=0)
# effective_credit_limit() over the accounts row.
_CREDIT_LIMIT = case(
    (
        _A.c.billing_model == BillingModel.POSTPAID,
        _A.c.credit_limit_minor
        + case(
            (
                and_(
                    _A.c.temp_increase_valid_until.is_not(None),
                    _A.c.temp_increase_valid_until > _NOW,
                ),
                case(
                    (
                        _A.c.temp_increase_percent.is_not(None),
                        _PERMANENT * _A.c.temp_increase_percent // 100,
                    ),
                    else_=func.coalesce(_A.c.temp_increase_minor, 0),
                ),
            ),
            else_=0,
        ),
    ),
    else_=0,
)
# The auto-recharge threshold when a recharge could start now (autorecharge.is_due's rule).
_RECHARGE_THRESHOLD = (
    select(_S.c.threshold_minor)
    .where(
        _S.c.account_id == _A.c.id,
        _S.c.enabled == true(),
        _S.c.amount_minor > 0,
        or_(_S.c.next_attempt_at.is_(None), _S.c.next_attempt_at <= _NOW),
    )
    .scalar_subquery()
)
_CLASS_THRESHOLDS = (
    select(_C.c.default_warning_thresholds)
    .where(_C.c.id == _A.c.customer_class_id)
    .scalar_subquery()
)
# UPDATE accounts (funds-checked, active only) RETURNING what the answer and the after-debit
# decision need, in FundsSnapshot's order: no other read.
_DEBIT = (
    update(_A)
    .where(
        _A.c.id == bindparam("account", type_=_A.c.id.type),
        _A.c.status == AccountStatus.ACTIVE,
        _A.c.balance_minor + _CREDIT_LIMIT - _AMOUNT >= 0,
    )
    .values(balance_minor=_A.c.balance_minor - _AMOUNT)
    .returning(
        _A.c.id,
        _A.c.balance_minor,
        _A.c.currency,
        _A.c.billing_model,
        _A.c.credit_limit_minor,
        _A.c.temp_increase_minor,
        _A.c.temp_increase_percent,
        _A.c.temp_increase_valid_until,
        func.coalesce(_A.c.warning_thresholds, _CLASS_THRESHOLDS, "").label("thresholds"),
        _A.c.warnings_fired,
        _RECHARGE_THRESHOLD.label("recharge_threshold"),
    )
)
_ENTRY_COLUMNS = (
    "kind",
    "amount_minor",
    "description",
    "reference",
    "idempotency_key",
    "created_at",
)
_ENTRY_VALUES = [bindparam(f"e_{name}", type_=_E.c[name].type) for name in _ENTRY_COLUMNS]
# PostgreSQL: UPDATE ... RETURNING feeds INSERT ... SELECT in one statement, which returns
# the account's columns and then the entry's id.
_DEBITED = _DEBIT.cte("debit")
_ENTRY_FROM_DEBIT = (
    insert(_E)
    .from_select(
        ["account_id", "balance_after_minor", "currency", *_ENTRY_COLUMNS],
        select(_DEBITED.c.id, _DEBITED.c.balance_minor, _DEBITED.c.currency, *_ENTRY_VALUES),
    )
    .returning(_E.c.id, _E.c.account_id)
    .cte("entry")
)
# SQLite (writers hold the database lock from BEGIN IMMEDIATE): the same two in turn.
_ENTRY = (
    insert(_E)
    .values(
        account_id=bindparam("e_account_id", type_=_E.c.account_id.type),
        balance_after_minor=bindparam("e_balance_after_minor", type_=_E.c.balance_after_minor.type),
        currency=bindparam("e_currency", type_=_E.c.currency.type),
        **dict(zip(_ENTRY_COLUMNS, _ENTRY_VALUES, strict=True)),
    )
    .returning(_E.c.id)
)
_DEBIT_STATEMENTS = {
    "postgresql": (
        select(_DEBITED, _ENTRY_FROM_DEBIT.c.id).join_from(
            _ENTRY_FROM_DEBIT, _DEBITED, _ENTRY_FROM_DEBIT.c.account_id == _DEBITED.c.id
        ),
    ),
    "sqlite": (_DEBIT, _ENTRY),
}


def debit_usage(
    db: Session,
    *,
    account_id: int,
    amount_minor: int,
    description: str,
    idempotency_key: str,
    at: datetime | None = None,
) -> UsageDebit | None:
    """Debit a call charge: one funds-checked UPDATE plus its immutable ledger entry.

    PostgreSQL runs both as one statement (a data-modifying CTE); SQLite, whose writers
    already hold the database lock (BEGIN IMMEDIATE), runs the same two in turn. None when
    the account is not active or its available funds do not cover the amount (nothing
    written); the caller commits. A used idempotency key raises IntegrityError (uniqueness
    on ledger_entries), never debits twice. Usage needs no note_funds_changed: the caller
    queues checks only when a threshold is reached (portal.jobs.queue_funds_check).
    """
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor < 0:
        raise ValueError("amount_minor must be a non-negative int")
    now = at or utcnow()
    params = {
        "account": account_id,
        "amount": amount_minor,
        "now": now,
        "e_kind": EntryKind.USAGE,
        "e_amount_minor": -amount_minor,
        "e_description": description[:300],
        "e_reference": "",
        "e_idempotency_key": idempotency_key,
        "e_created_at": now,
    }
    conn = db.connection()
    debit, *then = _DEBIT_STATEMENTS[conn.dialect.name]
    row = conn.execute(debit, params).first()
    if row is None:
        return None
    row = tuple(row)
    for entry in then:  # SQLite: the entry's own INSERT, its id appended like PostgreSQL's
        params.update(e_account_id=row[0], e_balance_after_minor=row[1], e_currency=row[2])
        row = (*row, conn.execute(entry, params).scalar_one())
    return UsageDebit(row[-1], FundsSnapshot(*row[:-1]))


def audit_balances(db: Session) -> list[tuple[int, int, int]]:
    """Accounts whose cached balance differs from the sum of their entries.

    Returns (account id, cached balance, sum of entries) for each mismatch.
    """
    sums = (
        select(
            LedgerEntry.account_id, func.coalesce(func.sum(LedgerEntry.amount_minor), 0).label("s")
        )
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    rows = db.execute(
        select(Account.id, Account.balance_minor, func.coalesce(sums.c.s, 0))
        .outerjoin(sums, sums.c.account_id == Account.id)
        .where(Account.balance_minor != func.coalesce(sums.c.s, 0))
    ).all()
    return [(r[0], r[1], int(r[2])) for r in rows]


# --- Reserve credit: a separate pot, usable only for in-app purchases -----------------


def grant_reserve(
    db: Session,
    *,
    account: Account,
    amount_minor: int,
    source: str,
    expires_at: datetime,
    idempotency_key: str,
    at: datetime | None = None,
) -> ReserveGrant:
    """Grant reserve credit (the caller holds the account lock and commits)."""
    existing = db.scalar(
        select(ReserveGrant).where(
            ReserveGrant.account_id == account.id,
            ReserveGrant.idempotency_key == idempotency_key,
        )
    )
    if existing is not None:
        return existing
    grant = ReserveGrant(
        account_id=account.id,
        amount_minor=amount_minor,
        remaining_minor=amount_minor,
        currency=account.currency,
        source=source[:200],
        granted_at=at or utcnow(),
        expires_at=expires_at,
        idempotency_key=idempotency_key,
    )
    db.add(grant)
    db.flush()
    return grant


def usable_reserve(db: Session, account_id: int, now: datetime | None = None) -> list[ReserveGrant]:
    """Active, unexpired grants, soonest-expiring first."""
    now = now or utcnow()
    return list(
        db.scalars(
            select(ReserveGrant)
            .where(
                ReserveGrant.account_id == account_id,
                ReserveGrant.status == GrantStatus.ACTIVE,
                ReserveGrant.remaining_minor > 0,
                ReserveGrant.expires_at > now,
            )
            .order_by(ReserveGrant.expires_at, ReserveGrant.id)
        )
    )


def consume_reserve(
    db: Session, *, account: Account, amount_minor: int, purpose: str, now: datetime | None = None
) -> int:
    """Take up to amount_minor from reserve credit, soonest-expiring first.

    The caller holds the account lock. Returns how much was taken.
    """
    taken = 0
    for grant in usable_reserve(db, account.id, now):
        if taken == amount_minor:
            break
        part = min(grant.remaining_minor, amount_minor - taken)
        grant.remaining_minor -= part
        if grant.remaining_minor == 0:
            grant.status = GrantStatus.USED
        db.add(ReserveUse(grant_id=grant.id, amount_minor=part, purpose=purpose[:200]))
        taken += part
    db.flush()
    return taken


def expire_reserve(db: Session, now: datetime | None = None) -> int:
    """Expire the remainder of grants past their expiry (recorded, not deleted)."""
    now = now or utcnow()
    result = db.execute(
        update(ReserveGrant)
        .where(ReserveGrant.status == GrantStatus.ACTIVE, ReserveGrant.expires_at <= now)
        .values(
            status=GrantStatus.EXPIRED,
            expired_minor=ReserveGrant.remaining_minor,
            remaining_minor=0,
            expired_at=now,
        )
        # The ORM's in-Python evaluation would apply remaining_minor=0 before copying it to
        # expired_minor in loaded objects; let them reload from the database instead.
        .execution_options(synchronize_session=False)
    )
    for obj in list(db.identity_map.values()):
        if isinstance(obj, ReserveGrant):
            db.expire(obj)
    return result.rowcount or 0
