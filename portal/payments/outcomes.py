"""What happens to a payment after it is made: refunds and disputes, in any order.

The state machine is built from *facts* rather than from the order events arrive in:
"the payment succeeded", "refund re_1 of 5.00 exists and succeeded", "dispute dp_1
withdrew 10.00", "dispute dp_1 reinstated 10.00", "dispute dp_1 was lost". Each fact is
stored once per Stripe object id (a refund id, a dispute id) and only ever moves forward
(a refund's status never goes back from succeeded to pending, a closed dispute never
reopens). `sync_money` then posts whichever ledger entries the facts call for and are
missing, each keyed by its Stripe object id, so the same facts always give the same
ledger, balance and status, whatever order and however many times they arrived.

A fact whose payment is not known yet (a refund event overtaking the payment's own
events, before we stored the charge and intent ids) is kept unlinked and linked the
moment the payment learns its ids; its money moves once the payment has been credited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit, invoices, ledger
from portal.models import (
    Account,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentDispute,
    PaymentRefund,
    PaymentStatus,
    RefundStatus,
    utcnow,
)
from portal.money import format_money

log = logging.getLogger(__name__)

# A refund's status only moves up this ranking (a late "pending" never undoes "succeeded").
REFUND_RANK = {
    RefundStatus.REQUESTED: -1,
    RefundStatus.REQUIRES_ACTION: 0,
    RefundStatus.PENDING: 1,
    RefundStatus.SUCCEEDED: 2,
    RefundStatus.FAILED: 3,
    RefundStatus.CANCELED: 3,
}
REFUND_MOVES_MONEY = (RefundStatus.PENDING, RefundStatus.SUCCEEDED, RefundStatus.REQUIRES_ACTION)
DISPUTE_CLOSED = ("won", "lost", "warning_closed")
DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
    "prevented",
)


@dataclass(frozen=True)
class RefundFact:
    refund_id: str | None  # None: only the charge's refunded total is known
    charge_id: str | None
    payment_intent_id: str | None
    amount_minor: int
    status: RefundStatus = RefundStatus.SUCCEEDED
    reason: str = ""
    actor_user_id: int | None = None


@dataclass(frozen=True)
class DisputeFact:
    dispute_id: str
    charge_id: str | None
    payment_intent_id: str | None
    amount_minor: int
    status: str = ""
    reason: str = ""
    withdrawn: bool = False
    reinstated: bool = False


# --- Finding the payment ------------------------------------------------------------------


def payment_of(
    db: Session,
    *,
    charge_id: str | None,
    payment_intent_id: str | None,
    metadata: dict | None = None,
) -> Payment | None:
    """The payment of a charge / PaymentIntent (or of our payment id in the metadata)."""
    if charge_id:
        payment = db.scalar(select(Payment).where(Payment.stripe_charge_id == charge_id))
        if payment is not None:
            return payment
    if payment_intent_id:
        payment = db.scalar(
            select(Payment).where(Payment.stripe_payment_intent_id == payment_intent_id)
        )
        if payment is not None:
            return payment
    raw_id = str((metadata or {}).get("payment_id", ""))
    return db.get(Payment, int(raw_id)) if raw_id.isdigit() and len(raw_id) < 19 else None


def lock_payment(db: Session, payment_id: int) -> tuple[Account, Payment]:
    """Lock the payment's account, then the payment (always in this order)."""
    account_id = db.scalar(select(Payment.account_id).where(Payment.id == payment_id))
    account = ledger.lock_account(db, account_id)
    payment = db.execute(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return account, payment


def remember_ids(payment: Payment, intent_id: str | None, charge_id: str | None) -> None:
    if intent_id and not payment.stripe_payment_intent_id:
        payment.stripe_payment_intent_id = intent_id[:64]
    if charge_id and not payment.stripe_charge_id:
        payment.stripe_charge_id = charge_id[:64]


# --- Recording facts ----------------------------------------------------------------------


def record_refund(db: Session, fact: RefundFact, *, metadata: dict | None = None) -> Payment | None:
    """Remember a refund (by id, or the charge's refunded total) and move its money (commits)."""
    key = fact.refund_id or f"total:{fact.charge_id or fact.payment_intent_id}"
    return _record(db, PaymentRefund, "stripe_refund_id", key, fact, _merge_refund, metadata)


def record_dispute(
    db: Session, fact: DisputeFact, *, metadata: dict | None = None
) -> Payment | None:
    """Remember what a dispute event says and move its money (commits)."""
    return _record(
        db, PaymentDispute, "stripe_dispute_id", fact.dispute_id, fact, _merge_dispute, metadata
    )


def _record(db, model, key_column, key, fact, merge, metadata) -> Payment | None:
    payment = payment_of(
        db,
        charge_id=fact.charge_id,
        payment_intent_id=fact.payment_intent_id,
        metadata=metadata,
    )
    if payment is None:
        # Not known yet: keep the fact unlinked, then look again (the payment may have
        # learnt its ids meanwhile; whoever commits second links it, see link_orphans).
        _upsert(db, model, key_column, key, fact, merge, payment_id=None)
        db.commit()
        payment = payment_of(
            db,
            charge_id=fact.charge_id,
            payment_intent_id=fact.payment_intent_id,
            metadata=metadata,
        )
        if payment is not None:
            link_orphans(db, payment.id)
        return payment
    account, payment = lock_payment(db, payment.id)
    learnt = (fact.charge_id and not payment.stripe_charge_id) or (
        fact.payment_intent_id and not payment.stripe_payment_intent_id
    )
    remember_ids(payment, fact.payment_intent_id, fact.charge_id)
    _upsert(db, model, key_column, key, fact, merge, payment_id=payment.id)
    sync_money(db, account, payment)
    db.commit()
    if learnt:
        link_orphans(db, payment.id)
    return payment


def _upsert(db, model, key_column, key, fact, merge, *, payment_id: int | None):
    column = getattr(model, key_column)
    row = db.scalar(
        select(model)
        .where(column == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        try:
            with db.begin_nested():
                row = model(**{key_column: key[:80]}, created_at=utcnow())
                merge(row, fact, new=True)
                row.payment_id = payment_id
                db.add(row)
        except IntegrityError:
            # A parallel delivery of the same object inserted it first: merge into theirs.
            row = db.scalar(
                select(model)
                .where(column == key)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        else:
            return row
    merge(row, fact, new=False)
    if payment_id is not None and row.payment_id is None:
        row.payment_id = payment_id
    db.flush()
    return row


def _merge_ids(row, fact) -> None:
    row.stripe_charge_id = row.stripe_charge_id or (fact.charge_id or None)
    row.stripe_payment_intent_id = row.stripe_payment_intent_id or (fact.payment_intent_id or None)


def _merge_refund(row: PaymentRefund, fact: RefundFact, *, new: bool) -> None:
    _merge_ids(row, fact)
    amount = max(int(fact.amount_minor), 0)
    if new:
        row.cumulative = fact.refund_id is None
        row.amount_minor, row.status = amount, fact.status
        row.reason, row.actor_user_id = fact.reason[:300], fact.actor_user_id
        return
    if row.cumulative:
        # Stripe's amount_refunded only grows: the largest total seen is the latest.
        row.amount_minor = max(row.amount_minor, amount)
        return
    row.amount_minor = row.amount_minor or amount
    if REFUND_RANK[fact.status] > REFUND_RANK[row.status]:
        row.status = fact.status
    row.reason = row.reason or fact.reason[:300]
    row.actor_user_id = row.actor_user_id or fact.actor_user_id


def _merge_dispute(row: PaymentDispute, fact: DisputeFact, *, new: bool) -> None:
    _merge_ids(row, fact)
    amount = max(int(fact.amount_minor), 0)
    if new:
        row.status, row.withdrawn_minor, row.reinstated_minor = "needs_response", 0, 0
        row.amount_minor, row.reason = amount, ""
    row.amount_minor = row.amount_minor or amount
    row.reason = row.reason or fact.reason[:100]
    if fact.status in DISPUTE_STATUSES and row.status not in DISPUTE_CLOSED:
        row.status = fact.status
    # Reinstated funds were withdrawn first, even when the events come the other way round.
    if (fact.withdrawn or fact.reinstated) and not row.withdrawn_minor:
        row.withdrawn_minor = row.amount_minor
    if fact.reinstated and not row.reinstated_minor:
        row.reinstated_minor = row.withdrawn_minor


def link_orphans(db: Session, payment_id: int) -> int:
    """Link refunds and disputes that arrived before the payment knew its ids (commits).

    Called after the payment's ids were committed, so a fact committed before this
    query is found here, and one committed after it finds the payment itself.
    """
    payment = db.get(Payment, payment_id, populate_existing=True)
    ids = [i for i in (payment.stripe_charge_id, payment.stripe_payment_intent_id) if i]
    if not ids or not _orphans_exist(db, ids):
        db.rollback()
        return 0
    account, payment = lock_payment(db, payment_id)
    linked = _link(db, payment)
    sync_money(db, account, payment)
    db.commit()
    return linked


def _link(db: Session, payment: Payment) -> int:
    """Attach the unlinked facts naming this payment's charge or intent (lock held)."""
    if not (payment.stripe_charge_id or payment.stripe_payment_intent_id):
        return 0
    linked = 0
    for model in (PaymentRefund, PaymentDispute):
        for row in db.scalars(
            select(model)
            .where(model.payment_id.is_(None), _matches(model, payment))
            .with_for_update()
        ):
            row.payment_id = payment.id
            linked += 1
    if linked:
        db.flush()
    return linked


def _matches(model, payment: Payment):
    conditions = []
    if payment.stripe_charge_id:
        conditions.append(model.stripe_charge_id == payment.stripe_charge_id)
    if payment.stripe_payment_intent_id:
        conditions.append(model.stripe_payment_intent_id == payment.stripe_payment_intent_id)
    return or_(*conditions)


def _orphans_exist(db: Session, ids: list[str]) -> bool:
    for model in (PaymentRefund, PaymentDispute):
        found = db.scalar(
            select(model.id)
            .where(
                model.payment_id.is_(None),
                or_(model.stripe_charge_id.in_(ids), model.stripe_payment_intent_id.in_(ids)),
            )
            .limit(1)
        )
        if found is not None:
            return True
    return False


# --- Money and status from the facts --------------------------------------------------------


def sync_money(db: Session, account: Account, payment: Payment) -> None:
    """Post the entries the payment's facts call for and are missing; derive its status.

    The caller holds the account and payment locks (lock_payment) and commits. Before the
    payment was credited nothing moves: its refunds and disputes wait for the credit.
    """
    if not payment.paid:
        return
    # Facts committed while the payment did not know its ids yet are part of it too.
    _link(db, payment)
    refunds = _rows(db, PaymentRefund, payment)
    disputes = _rows(db, PaymentDispute, payment)
    by_id = 0
    for refund in (r for r in refunds if not r.cumulative):
        by_id += _sync_refund(db, account, payment, refund)
    known = sum(r.amount_minor for r in refunds if not r.cumulative)
    _sync_unattributed(db, account, payment, refunds, known)
    for dispute in disputes:
        _sync_dispute(db, account, payment, dispute)
    payment.refunded_minor = by_id + payment.unattributed_refund_minor
    payment.disputed = bool(disputes)
    payment.status = _status(payment, disputes)


def _rows(db: Session, model, payment: Payment) -> list:
    return list(db.scalars(select(model).where(model.payment_id == payment.id).order_by(model.id)))


def _post(db, account, payment, *, kind, amount, key, description, reference):
    posting = ledger.post_entry(
        db,
        account_id=account.id,
        account=account,
        kind=kind,
        amount_minor=amount,
        currency=payment.currency,
        description=description,
        reference=reference or "",
        idempotency_key=key,
    )
    if not posting.replayed:
        # Money given back (a failed refund, reinstated dispute funds) pays postpaid invoices;
        # the debits are billed on the next postpaid invoice.
        invoices.settle_credit(db, account=account, amount_minor=amount, source=description)
    return posting


def _sync_refund(db, account, payment, refund: PaymentRefund) -> int:
    """Debit a live refund once; credit it back once if it later failed. Returns what counts."""
    key = f"refund:{refund.stripe_refund_id}"
    money = _money(refund.amount_minor, payment)
    if refund.status in REFUND_MOVES_MONEY:
        _post(
            db,
            account,
            payment,
            kind=EntryKind.REFUND,
            amount=-refund.amount_minor,
            key=key,
            description=f"Card payment refunded: {money}"
            + (f" ({refund.reason})" if refund.reason else ""),
            reference=refund.stripe_refund_id,
        )
        return refund.amount_minor
    if ledger.find_entry(db, account.id, key) is not None:
        _post(
            db,
            account,
            payment,
            kind=EntryKind.REFUND,
            amount=refund.amount_minor,
            key=f"refund-failed:{refund.stripe_refund_id}",
            description=f"Refund of {money} failed: the money stays on the balance",
            reference=refund.stripe_refund_id,
        )
    return 0


def _sync_unattributed(db, account, payment, refunds, known: int) -> None:
    # Stripe's charge.refunded may carry only the refunded total: the part of it not
    # covered by refunds we know by id (whatever their status: a failed one is settled
    # by its own row) is debited, and given back once they arrive.
    total = max((r.amount_minor for r in refunds if r.cumulative), default=0)
    target = max(0, min(total, payment.amount_minor) - known)
    delta = target - payment.unattributed_refund_minor
    if delta == 0:
        return
    step = (
        db.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(
                LedgerEntry.account_id == account.id,
                LedgerEntry.idempotency_key.like(f"refund-total:{payment.id}:%"),
            )
        )
        or 0
    )
    _post(
        db,
        account,
        payment,
        kind=EntryKind.REFUND,
        amount=-delta,
        key=f"refund-total:{payment.id}:{step}",
        description=f"Card payment refunded ({_money(total, payment)} in total)"
        if delta > 0
        else "Refund counted twice, corrected",
        reference=payment.stripe_charge_id,
    )
    payment.unattributed_refund_minor = target


def _sync_dispute(db, account, payment, dispute: PaymentDispute) -> None:
    if not dispute.admins_told:
        dispute.admins_told = True
        _dispute_opened(db, account, payment, dispute)
    if dispute.withdrawn_minor:
        posting = _post(
            db,
            account,
            payment,
            kind=EntryKind.CHARGEBACK,
            amount=-dispute.withdrawn_minor,
            key=f"dispute-withdrawn:{dispute.stripe_dispute_id}",
            description=f"Chargeback: card payment disputed ({dispute.reason or 'no reason'})",
            reference=dispute.stripe_dispute_id,
        )
        if not posting.replayed:
            _tell_admins(db, account, payment, dispute)
    if dispute.reinstated_minor:
        _post(
            db,
            account,
            payment,
            kind=EntryKind.CHARGEBACK_REVERSAL,
            amount=dispute.reinstated_minor,
            key=f"dispute-reinstated:{dispute.stripe_dispute_id}",
            description="Chargeback reversed: the dispute was decided in our favour",
            reference=dispute.stripe_dispute_id,
        )


def _status(payment: Payment, disputes: list[PaymentDispute]) -> PaymentStatus:
    if disputes:
        latest = disputes[-1]
        if latest.status == "won" or (
            latest.status not in DISPUTE_CLOSED and latest.reinstated_minor
        ):
            return PaymentStatus.WON
        if latest.status == "lost":
            return PaymentStatus.LOST
        if latest.status not in DISPUTE_CLOSED:
            return PaymentStatus.DISPUTED
    if payment.refunded_minor >= payment.amount_minor:
        return PaymentStatus.REFUNDED
    if payment.refunded_minor > 0:
        return PaymentStatus.PARTIALLY_REFUNDED
    return PaymentStatus.SUCCEEDED


def _money(amount_minor: int, payment: Payment) -> str:
    return format_money(amount_minor, payment.currency)


def _tell_admins(db: Session, account: Account, payment: Payment, dispute: PaymentDispute) -> None:
    from portal.notifications import notify_admins

    amount = _money(dispute.withdrawn_minor, payment)
    audit.record(
        db,
        actor_user_id=None,
        reseller_id=account.reseller_id,
        action="payment.chargeback",
        object_type="payment",
        object_id=payment.id,
        before=None,
        after={
            "dispute": dispute.stripe_dispute_id,
            "reason": dispute.reason,
            "account": account.number,
            "amount": amount,
        },
    )
    notify_admins(
        db,
        reseller_id=account.reseller_id,
        subject=f"Chargeback of {amount} on account {account.number}",
        body=(
            f"Stripe withdrew {amount} for dispute {dispute.stripe_dispute_id} "
            f"({dispute.reason or 'no reason given'}) of card payment {payment.id} of account "
            f"{account.number} ({account.name}). The amount was debited from the balance.\n"
            "See Admin > Payments to follow the dispute.\n"
        ),
        dedupe_key=f"chargeback:{dispute.stripe_dispute_id}",
    )
    log.warning("Chargeback %s on account %s (%s)", amount, account.number, dispute.reason)


def _dispute_opened(db: Session, account: Account, payment: Payment, dispute) -> None:
    from portal.notifications import notify_admins

    audit.record(
        db,
        actor_user_id=None,
        reseller_id=account.reseller_id,
        action="payment.dispute_created",
        object_type="payment",
        object_id=payment.id,
        before={"disputed": False},
        after={
            "disputed": True,
            "dispute": dispute.stripe_dispute_id,
            "reason": dispute.reason,
            "account": account.number,
            "amount": _money(dispute.amount_minor or payment.amount_minor, payment),
        },
    )
    notify_admins(
        db,
        reseller_id=account.reseller_id,
        subject=f"Card payment disputed on account {account.number}",
        body=(
            f"The customer's bank disputes card payment {payment.id} of "
            f"{_money(payment.amount_minor, payment)} of account {account.number} "
            f"({account.name}); reason: {dispute.reason or 'not given'}.\n"
            "Answer it in the Stripe dashboard; see Admin > Payments.\n"
        ),
        dedupe_key=f"dispute:{dispute.stripe_dispute_id}",
    )
    log.warning("Payment %s of account %s is disputed", payment.id, account.number)
