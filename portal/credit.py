"""Customers' balance & credits (PortaBilling): credit limits, thresholds, manual payments.

Every change writes an audit row; credit limit changes also write Credit Limit History.
Money moves only through portal.ledger.post_entry. Each operation commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import audit, emails, invoices, ledger
from portal.domain import DomainError, ValidationFailed
from portal.i18n import N_, _, money_error
from portal.models import (
    Account,
    BillingModel,
    CreditChangeKind,
    CreditLimitChange,
    EntryKind,
    TransferSetting,
    UnallocatedPayment,
    User,
    utcnow,
)
from portal.money import (
    MAX_MAJOR,
    MoneyError,
    format_money,
    format_plain,
    minor_digits,
    parse_amount,
)

MAX_THRESHOLDS = 10
MAX_PERCENT = 1000  # a temporary increase of ten times the permanent limit is already absurd
_PERCENT = re.compile(r"^(\d{1,4})\s*%$")


class CreditError(DomainError):
    """A refused balance & credits change."""


# --- Maximum possible increase (configured per customer class) ------------------------


@dataclass(frozen=True)
class MaximumIncrease:
    amount_minor: int | None  # the class's amount cap
    percent: int | None  # the class's percentage cap (of the permanent limit)
    days: int | None  # longest validity; None: any period
    limit_minor: int | None  # the tighter of the two caps for this account; None: none allowed


def maximum_increase(account: Account) -> MaximumIncrease:
    """The customer class's Maximum possible increase, resolved for this account."""
    klass = account.customer_class
    amount = klass.max_increase_minor if klass else None
    percent = klass.max_increase_percent if klass else None
    caps = []
    if amount is not None:
        caps.append(amount)
    if percent is not None:
        caps.append(max(account.credit_limit_minor, 0) * percent // 100)
    return MaximumIncrease(
        amount, percent, klass.max_increase_days if klass else None, min(caps) if caps else None
    )


def maximum_prompt(account: Account) -> str:
    """The Maximum possible increase prompt shown next to the form."""
    cap = maximum_increase(account)
    if cap.limit_minor is None:
        return "Maximum possible increase: none (the customer class allows no increase)."
    parts = []
    if cap.amount_minor is not None:
        parts.append(format_money(cap.amount_minor, account.currency))
    if cap.percent is not None:
        parts.append(f"{cap.percent}% of the Permanent Credit Limit")
    period = f"for up to {cap.days} days" if cap.days is not None else "for any period"
    return (
        f"Maximum possible increase: {format_money(cap.limit_minor, account.currency)} "
        f"({' / '.join(parts)}) {period}."
    )


# --- Credit limits -------------------------------------------------------------------


def describe_limit(account: Account, now: datetime | None = None) -> str:
    """The effective credit limit as text for the history, e.g. '£250.00 (+25%)'."""
    limit = ledger.effective_credit_limit(account, now)
    text = format_money(limit, account.currency)
    valid = account.temp_increase_valid_until
    if valid is not None and (now or utcnow()) < valid:
        extra = (
            f"{account.temp_increase_percent}%"
            if account.temp_increase_percent is not None
            else format_money(account.temp_increase_minor or 0, account.currency)
        )
        text += f" (+{extra})"
    return text[:60]


def _require_postpaid(account: Account, what: str) -> None:
    if account.billing_model != BillingModel.POSTPAID:
        raise CreditError(_("%(what)s is only for postpaid customers.", what=_(what)))


def _limit_state(account: Account) -> dict:
    return {
        "credit_limit_minor": account.credit_limit_minor,
        "temp_increase_minor": account.temp_increase_minor,
        "temp_increase_percent": account.temp_increase_percent,
        "temp_increase_valid_until": account.temp_increase_valid_until,
    }


def _history(db, account, kind, old, *, actor, valid_until=None, now=None) -> None:
    change = CreditLimitChange(
        account_id=account.id,
        kind=kind,
        old_value=old,
        new_value=describe_limit(account, now),
        valid_until=valid_until,
        actor_user_id=actor.id if actor else None,
        created_at=now or utcnow(),
    )
    db.add(change)
    db.flush()
    # Every change of the limit is money news for the customer: one mail per history row.
    emails.credit_limit_email(
        db,
        account=account,
        old_limit=change.old_value,
        new_limit=change.new_value,
        valid_until=valid_until,
        dedupe_key=f"credit-limit:{change.id}",
    )
    # Available funds changed without a ledger entry: recharge and warnings check after commit.
    ledger.note_funds_changed(db, account.id)


def _audit(db, account, action, before, after, actor) -> None:
    audit.record(
        db,
        actor_user_id=actor.id if actor else None,
        reseller_id=account.reseller_id,
        action=action,
        object_type="account",
        object_id=account.id,
        before=before,
        after=after,
    )


def set_permanent_limit(db: Session, *, account: Account, limit_minor: int, actor: User) -> None:
    """Set a postpaid customer's Permanent Credit Limit (0 or more)."""
    _require_postpaid(account, N_("A credit limit"))
    _check_minor(limit_minor, account.currency, allow_zero=True, field="credit_limit")
    account = ledger.lock_account(db, account.id)
    before, old = _limit_state(account), describe_limit(account)
    account.credit_limit_minor = limit_minor
    _history(db, account, CreditChangeKind.PERMANENT, old, actor=actor)
    _audit(db, account, "credit.permanent_limit", before, _limit_state(account), actor)
    db.commit()


def parse_increase(text: str, currency: str) -> tuple[int | None, int | None]:
    """'50.00' -> (5000, None); '25%' -> (None, 25). Raises CreditError on anything else."""
    raw = (text or "").strip()
    match = _PERCENT.match(raw)
    if match:
        return None, int(match.group(1))
    if raw.endswith("%"):
        raise CreditError(_("Use a whole percentage such as 25%."), field="increase")
    try:
        return parse_amount(raw, currency), None
    except MoneyError as exc:
        raise CreditError(money_error(str(exc)), field="increase") from exc


def set_temporary_increase(
    db: Session,
    *,
    account: Account,
    amount_minor: int | None = None,
    percent: int | None = None,
    valid_until: datetime,
    actor: User,
    now: datetime | None = None,
) -> None:
    """Set (replace) a postpaid customer's Temporary Credit Limit Increase until valid_until."""
    _require_postpaid(account, N_("A temporary credit limit increase"))
    now = now or utcnow()
    account = ledger.lock_account(db, account.id)
    increase = _increase_minor(account, amount_minor, percent)
    _check_maximum(account, increase, valid_until, now)
    before, old = _limit_state(account), describe_limit(account, now)
    account.temp_increase_minor = amount_minor if percent is None else None
    account.temp_increase_percent = percent
    account.temp_increase_valid_until = valid_until
    _history(
        db, account, CreditChangeKind.TEMPORARY, old, actor=actor, valid_until=valid_until, now=now
    )
    _audit(db, account, "credit.temporary_increase", before, _limit_state(account), actor)
    db.commit()


def _increase_minor(account: Account, amount_minor: int | None, percent: int | None) -> int:
    if (amount_minor is None) == (percent is None):
        raise CreditError(
            _("Give the increase either as an amount or as a percentage."), field="increase"
        )
    if percent is not None:
        if (
            isinstance(percent, bool)
            or not isinstance(percent, int)
            or not 0 < percent <= MAX_PERCENT
        ):
            raise CreditError(
                _("Enter a percentage from 1%% to %(max_percent)s%%.", max_percent=MAX_PERCENT),
                field="increase",
            )
        if account.credit_limit_minor <= 0:
            raise CreditError(
                _("A percentage needs a positive Permanent Credit Limit; enter an amount instead."),
                field="increase",
            )
        return account.credit_limit_minor * percent // 100
    _check_minor(amount_minor, account.currency, field="increase")
    return amount_minor


def _check_maximum(account: Account, increase: int, valid_until: datetime, now: datetime) -> None:
    cap = maximum_increase(account)
    prompt = maximum_prompt(account)
    if cap.limit_minor is None or increase > cap.limit_minor:
        raise CreditError(
            _("The increase is above the maximum. %(prompt)s", prompt=prompt), field="increase"
        )
    if valid_until.tzinfo is None or valid_until <= now:
        raise CreditError(_("Valid Until must be in the future."), field="valid_until")
    if cap.days is not None and valid_until > now + timedelta(days=cap.days):
        raise CreditError(
            _("Valid Until is too far away. %(prompt)s", prompt=prompt), field="valid_until"
        )


def remove_temporary_increase(db: Session, *, account: Account, actor: User) -> None:
    """End a temporary increase now (recorded as a revert)."""
    account = ledger.lock_account(db, account.id)
    if account.temp_increase_valid_until is None:
        raise CreditError(_("There is no temporary increase to remove."))
    _revert(db, account, actor=actor, now=utcnow())
    db.commit()


def _revert(db: Session, account: Account, *, actor: User | None, now: datetime) -> None:
    before, old = _limit_state(account), describe_limit(account, now)
    if account.temp_increase_valid_until is not None and account.temp_increase_valid_until <= now:
        # Already expired: the effective limit went back at valid_until; show what it was.
        old = describe_limit(account, account.temp_increase_valid_until - timedelta(seconds=1))
    account.temp_increase_minor = None
    account.temp_increase_percent = None
    account.temp_increase_valid_until = None
    _history(db, account, CreditChangeKind.REVERT, old, actor=actor, now=now)
    _audit(db, account, "credit.revert_increase", before, _limit_state(account), actor)


def revert_expired_increases(db: Session, now: datetime | None = None) -> int:
    """Clear temporary increases whose Valid Until has passed (scheduled job); returns how many."""
    now = now or utcnow()
    due = db.scalars(
        select(Account.id).where(
            Account.temp_increase_valid_until.is_not(None),
            Account.temp_increase_valid_until <= now,
        )
    ).all()
    reverted = 0
    for account_id in due:
        account = ledger.lock_account(db, account_id)
        # Re-check under the lock: another run or an admin may have changed it meanwhile.
        valid = account.temp_increase_valid_until
        if valid is not None and valid <= now:
            _revert(db, account, actor=None, now=now)
            reverted += 1
        db.commit()
    return reverted


def credit_history(db: Session, account: Account, limit: int = 50) -> list[tuple]:
    """Credit Limit History, newest first, as (change, actor email or None) pairs."""
    rows = db.execute(
        select(CreditLimitChange, User.email)
        .outerjoin(User, User.id == CreditLimitChange.actor_user_id)
        .where(CreditLimitChange.account_id == account.id)
        .order_by(CreditLimitChange.id.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


# --- Warning thresholds --------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    amount_minor: int | None = None
    percent: int | None = None

    def text(self, currency: str) -> str:
        if self.percent is not None:
            return f"{self.percent}%"
        return format_plain(self.amount_minor or 0, currency)


def threshold_label(model: BillingModel) -> str:
    """The field's name depends on the balance model (PortaBilling wording)."""
    if model == BillingModel.POSTPAID:
        return "Credit Limit Warning Threshold"
    return "Low Funds Warning Threshold"


def parse_thresholds(
    text: str | None, model: BillingModel, currency: str = "GBP"
) -> list[Threshold]:
    """Parse a comma-separated threshold list; every bad value gets its own message."""
    values = [part.strip() for part in (text or "").split(",") if part.strip()]
    errors = []
    if len(values) > MAX_THRESHOLDS:
        errors.append(f"at most {MAX_THRESHOLDS} thresholds (you gave {len(values)})")
    parsed = []
    for raw in values:
        try:
            parsed.append(_parse_threshold(raw, model, currency))
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise CreditError("; ".join(errors) + ".", field="thresholds")
    # Duplicates would notify twice for one crossing.
    return list(dict.fromkeys(parsed))


def _parse_threshold(raw: str, model: BillingModel, currency: str) -> Threshold:
    if raw.endswith("%"):
        if model != BillingModel.POSTPAID:
            raise ValueError(_("'%(raw)s': percentages are only for postpaid accounts", raw=raw))
        match = _PERCENT.match(raw)
        if not match or not 0 < int(match.group(1)) <= 100:
            raise ValueError(_("'%(raw)s' is not a percentage from 1%% to 100%%", raw=raw))
        return Threshold(percent=int(match.group(1)))
    try:
        return Threshold(amount_minor=parse_amount(raw, currency, allow_zero=True))
    except MoneyError as exc:
        if str(exc).startswith("Enter a plain number"):
            raise ValueError(_("'%(raw)s' is not an amount", raw=raw)) from exc
        raise ValueError(
            _("'%(raw)s': %(error)s", raw=raw, error=money_error(str(exc)).rstrip("."))
        ) from exc


def threshold_minor(threshold: Threshold, account: Account) -> int:
    """The available-funds level a threshold stands for (percent: of the permanent limit)."""
    if threshold.percent is not None:
        return max(account.credit_limit_minor, 0) * threshold.percent // 100
    return threshold.amount_minor or 0


def effective_thresholds_text(account: Account) -> str:
    """The account's own list, else the customer class default."""
    if account.warning_thresholds is not None:
        return account.warning_thresholds
    return account.customer_class.default_warning_thresholds if account.customer_class else ""


def set_warning_thresholds(db: Session, *, account: Account, text: str, actor: User) -> None:
    """Set the account's warning thresholds; blank means the customer class default."""
    thresholds = parse_thresholds(text, account.billing_model, account.currency)
    if thresholds and any(t.percent for t in thresholds) and account.credit_limit_minor <= 0:
        raise CreditError(
            _("Percentages need a positive Permanent Credit Limit."), field="thresholds"
        )
    before = {"warning_thresholds": account.warning_thresholds}
    stored = ", ".join(t.text(account.currency) for t in thresholds) if text.strip() else None
    account.warning_thresholds = stored
    account.warnings_fired = ""  # a new list starts un-notified
    _audit(db, account, "credit.warning_thresholds", before, {"warning_thresholds": stored}, actor)
    db.commit()


# --- Subscriber-to-subscriber transfers ------------------------------------------------

TRANSFER_LABELS = {
    TransferSetting.CLASS: N_("As defined by the customer class"),
    TransferSetting.YES: N_("Yes"),
    TransferSetting.NO: N_("No"),
}


def transfers_resolved(account: Account) -> bool:
    """Whether the account may transfer, after resolving "As defined by the customer class"."""
    if account.transfers == TransferSetting.CLASS:
        return bool(account.customer_class and account.customer_class.transfers_allowed)
    return account.transfers == TransferSetting.YES


def set_transfer_setting(db: Session, *, account: Account, setting: TransferSetting, actor: User):
    """Set Subscriber-to-Subscriber transfers allowed (class default / Yes / No)."""
    setting = TransferSetting(setting)
    before = {"transfers": account.transfers.value}
    account.transfers = setting
    _audit(db, account, "credit.transfers", before, {"transfers": setting.value}, actor)
    db.commit()


# --- Manual payments and adjustments ----------------------------------------------------


def _check_minor(value, currency: str, *, allow_zero=False, allow_negative=False, field="amount"):
    if isinstance(value, bool) or not isinstance(value, int):
        raise CreditError(_("Enter an amount."), field=field)
    if abs(value) > int(MAX_MAJOR.scaleb(minor_digits(currency))):
        raise CreditError(_("The amount is too large."), field=field)
    if value < 0 and not allow_negative:
        raise CreditError(_("Enter a positive amount."), field=field)
    if value == 0 and not allow_zero:
        raise CreditError(_("Enter an amount other than zero."), field=field)


def _check_texts(order_number: str, reason: str) -> tuple[str, str]:
    order_number, reason = (order_number or "").strip(), (reason or "").strip()
    if len(order_number) > 60:
        raise ValidationFailed(_("Order number: at most 60 characters."), field="order_number")
    if not reason:
        raise ValidationFailed(_("Give a reason."), field="reason")
    if len(reason) > 200:
        raise ValidationFailed(_("Reason: at most 200 characters."), field="reason")
    return order_number, reason


def record_manual_payment(
    db: Session,
    *,
    account: Account,
    amount_minor: int,
    order_number: str,
    reason: str,
    actor: User,
    idempotency_key: str,
) -> ledger.Posting:
    """Record a payment received outside the portal; postpaid payments settle open invoices."""
    _check_minor(amount_minor, account.currency)
    order_number, reason = _check_texts(order_number, reason)
    posting = _post(
        db, account, EntryKind.PAYMENT, amount_minor, order_number, reason, actor, idempotency_key
    )
    if not posting.replayed:
        if account.billing_model == BillingModel.POSTPAID:
            # Settles the oldest open invoices; the rest becomes an unallocated payment.
            invoices.allocate_payment(
                db,
                account=account,
                amount_minor=amount_minor,
                source=f"Manual payment {order_number}".strip(),
            )
        _audit_money(db, account, "credit.manual_payment", posting, actor)
    db.commit()
    return posting


def adjust_balance(
    db: Session,
    *,
    account: Account,
    amount_minor: int,
    order_number: str,
    reason: str,
    actor: User,
    idempotency_key: str,
) -> ledger.Posting:
    """Correct the balance by a signed amount (an adjustment, not a payment)."""
    _check_minor(amount_minor, account.currency, allow_negative=True)
    order_number, reason = _check_texts(order_number, reason)
    posting = _post(
        db,
        account,
        EntryKind.ADJUSTMENT,
        amount_minor,
        order_number,
        reason,
        actor,
        idempotency_key,
    )
    if not posting.replayed:
        source = f"Adjustment {order_number}".strip()
        invoices.settle_credit(db, account=account, amount_minor=amount_minor, source=source)
        _audit_money(db, account, "credit.adjustment", posting, actor)
    db.commit()
    return posting


def _post(db, account, kind, amount_minor, order_number, reason, actor, key) -> ledger.Posting:
    label = "Manual payment" if kind == EntryKind.PAYMENT else "Adjustment"
    return ledger.post_entry(
        db,
        account_id=account.id,
        kind=kind,
        amount_minor=amount_minor,
        description=f"{label}: {reason}",
        reference=order_number,
        actor_user_id=actor.id if actor else None,
        idempotency_key=f"admin:{key}"[:120],
    )


def _audit_money(db, account, action, posting: ledger.Posting, actor) -> None:
    entry = posting.entry
    before = {"balance_minor": entry.balance_after_minor - entry.amount_minor}
    after = {
        "balance_minor": entry.balance_after_minor,
        "amount_minor": entry.amount_minor,
        "reference": entry.reference,
        "ledger_entry_id": entry.id,
    }
    _audit(db, account, action, before, after, actor)


def unallocated_payments(db: Session, account: Account) -> tuple[int, list[UnallocatedPayment]]:
    """The total still unallocated and the rows that make it up (newest first)."""
    rows = list(
        db.scalars(
            select(UnallocatedPayment)
            .where(
                UnallocatedPayment.account_id == account.id,
                UnallocatedPayment.remaining_minor > 0,
            )
            .order_by(UnallocatedPayment.id.desc())
        )
    )
    return sum(row.remaining_minor for row in rows), rows
