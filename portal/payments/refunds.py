"""An admin refunds a card payment (full or partial, with a reason): idempotent and audited.

The request is recorded (status "requested", no money moves) before Stripe is called,
keyed by the form's idempotency key, so a double click or a retry after a lost answer
asks Stripe with the same key and never refunds twice. Once Stripe names the refund
(re_...), it becomes the same fact the webhooks report (portal.payments.outcomes), and
the balance is debited exactly once whichever of the answer or the webhook comes first.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import audit
from portal.domain import DomainError, ValidationFailed
from portal.i18n import _
from portal.models import Payment, PaymentRefund, RefundStatus, User
from portal.money import format_money
from portal.payments import gateway, outcomes
from portal.payments.gateway import GatewayRefused, GatewayUnavailable

KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
NOT_CONFIRMED = (
    "The payment service did not confirm the refund yet. Submitting again is safe: "
    "it will not refund twice."
)


def refundable_minor(db: Session, payment: Payment) -> int:
    """What is left to refund: the amount less every refund not failed (requested too)."""
    taken = sum(
        r.amount_minor
        for r in db.scalars(
            select(PaymentRefund).where(
                PaymentRefund.payment_id == payment.id, PaymentRefund.cumulative.is_(False)
            )
        )
        if r.status not in (RefundStatus.FAILED, RefundStatus.CANCELED)
    )
    return max(0, payment.amount_minor - max(taken, payment.refunded_minor))


def refund_payment(
    db: Session,
    *,
    payment: Payment,
    amount_minor: int | None,
    reason: str,
    actor: User,
    idempotency_key: str,
) -> PaymentRefund:
    """Refund `amount_minor` (None: everything left) of a paid card payment (commits)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise ValidationFailed(_("Give a reason (at most 200 characters)."), field="reason")
    if not KEY.match(idempotency_key or ""):
        raise ValidationFailed(_("The form expired. Please open the payment again."))
    key = f"admin-refund:{payment.id}:{idempotency_key}"
    account, payment = outcomes.lock_payment(db, payment.id)
    row = db.scalar(select(PaymentRefund).where(PaymentRefund.idempotency_key == key))
    if row is None:
        row = _new_request(db, payment, amount_minor, reason, actor, key)
        audit.record(
            db,
            actor_user_id=actor.id,
            reseller_id=account.reseller_id,
            action="payment.refund",
            object_type="payment",
            object_id=payment.id,
            before={"refunded": format_money(payment.refunded_minor, payment.currency)},
            after={"refund": format_money(row.amount_minor, payment.currency), "reason": reason},
        )
        db.commit()
    if row.status != RefundStatus.REQUESTED:
        return row  # the same form again: already answered
    return _ask_stripe(db, row, payment)


def _new_request(db, payment: Payment, amount_minor, reason, actor, key) -> PaymentRefund:
    if not payment.paid or not payment.stripe_payment_intent_id:
        raise ValidationFailed(_("Only a succeeded card payment can be refunded."))
    left = refundable_minor(db, payment)
    amount = left if amount_minor is None else amount_minor
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        if left == 0:
            raise ValidationFailed(_("This payment is already fully refunded."))
        raise ValidationFailed(_("The amount must be greater than zero."), field="amount")
    if amount > left:
        raise ValidationFailed(
            _(
                "At most %(amount)s can still be refunded.",
                amount=format_money(left, payment.currency),
            ),
            field="amount",
        )
    row = PaymentRefund(
        stripe_refund_id=f"requested:{uuid.uuid4().hex}",
        payment_id=payment.id,
        stripe_charge_id=payment.stripe_charge_id,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        cumulative=False,
        amount_minor=amount,
        status=RefundStatus.REQUESTED,
        reason=reason,
        actor_user_id=actor.id,
        idempotency_key=key,
    )
    db.add(row)
    db.flush()
    return row


def _ask_stripe(db: Session, row: PaymentRefund, payment: Payment) -> PaymentRefund:
    try:
        result = gateway.create_refund(
            payment_intent_id=payment.stripe_payment_intent_id,
            amount_minor=row.amount_minor,
            idempotency_key=row.idempotency_key,
            metadata={"payment_id": str(payment.id), "refund_request": str(row.id)},
        )
    except GatewayUnavailable:
        raise DomainError(NOT_CONFIRMED) from None
    except GatewayRefused as exc:
        _account, payment = outcomes.lock_payment(db, payment.id)
        row = db.get(PaymentRefund, row.id, populate_existing=True)
        row.status = RefundStatus.FAILED
        db.commit()
        raise ValidationFailed(
            _("Stripe refused the refund: %(message)s", message=exc.message)
        ) from None
    return _named(db, row.id, payment.id, result)


def _named(db: Session, row_id: int, payment_id: int, result) -> PaymentRefund:
    """Give the request Stripe's refund id; merge with the webhook's row if it came first."""
    account, payment = outcomes.lock_payment(db, payment_id)
    row = db.get(PaymentRefund, row_id, populate_existing=True)
    try:
        status = RefundStatus(result.status)
    except ValueError:
        status = RefundStatus.PENDING
    twin = db.scalar(
        select(PaymentRefund).where(PaymentRefund.stripe_refund_id == result.refund_id)
    )
    if twin is not None and twin.id != row.id:
        twin.reason, twin.actor_user_id = row.reason, row.actor_user_id
        key = row.idempotency_key
        db.delete(row)
        db.flush()
        twin.idempotency_key = key
        row = twin
    else:
        row.stripe_refund_id = result.refund_id
    if outcomes.REFUND_RANK[status] > outcomes.REFUND_RANK[row.status]:
        row.status = status
    db.flush()
    outcomes.sync_money(db, account, payment)
    db.commit()
    return row


def refunds_of(db: Session, payment: Payment) -> list[PaymentRefund]:
    return list(
        db.scalars(
            select(PaymentRefund)
            .where(PaymentRefund.payment_id == payment.id, PaymentRefund.cumulative.is_(False))
            .order_by(PaymentRefund.id)
        )
    )
