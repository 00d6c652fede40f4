"""Stripe events: stored once, then dispatched through a type -> handler table."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.models import Account, PaymentCard, WebhookEvent, utcnow
from portal.payments import refunds, service
from portal.payments.gateway import CardInfo, StripeEvent

log = logging.getLogger(__name__)


def receive_event(db: Session, *, event: StripeEvent, payload: bytes) -> str:
    """Store a verified event and process it once; returns "processed", "ignored" or "duplicate"."""
    row = _store(db, event, payload)
    if row is None:
        return "duplicate"
    handler = HANDLERS.get(event.type)
    try:
        if handler is not None:
            handler(db, event.object)
    except Exception as exc:
        db.rollback()
        _finish(db, row.id, error=f"{exc.__class__.__name__}: {exc}")
        raise
    _finish(db, row.id)
    return "processed" if handler else "ignored"


def _store(db: Session, event: StripeEvent, payload: bytes) -> WebhookEvent | None:
    row = WebhookEvent(
        stripe_event_id=event.id[:80],
        type=event.type[:80],
        payload=payload.decode("utf-8", "replace"),
        received_at=utcnow(),
    )
    db.add(row)
    try:
        db.commit()
        return row
    except IntegrityError:
        db.rollback()
    existing = db.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event.id[:80]))
    # Only an earlier attempt that failed is processed again; anything else is a duplicate.
    return existing if existing is not None and existing.error else None


def _finish(db: Session, row_id: int, error: str = "") -> None:
    row = db.get(WebhookEvent, row_id)
    row.error = error[:500]
    row.processed_at = None if error else utcnow()
    db.commit()


def _id(value) -> str | None:
    return value.get("id") if isinstance(value, dict) else value


def _on_intent_succeeded(db: Session, intent: dict) -> None:
    service.settle_payment_succeeded(
        db,
        payment_intent_id=intent["id"],
        charge_id=_id(intent.get("latest_charge")),
        metadata=intent.get("metadata") or {},
    )


def _on_intent_failed(db: Session, intent: dict) -> None:
    error = intent.get("last_payment_error") or {}
    service.settle_payment_failed(
        db,
        payment_intent_id=intent["id"],
        message=error.get("message") or "The payment failed.",
        metadata=intent.get("metadata") or {},
    )


def _account_of_customer(db: Session, customer) -> Account | None:
    customer_id = _id(customer)
    if not customer_id:
        return None
    return db.scalar(select(Account).where(Account.stripe_customer_id == customer_id))


def _on_setup_succeeded(db: Session, intent: dict) -> None:
    # Usually the browser already told us; this catches a closed tab.
    account = _account_of_customer(db, intent.get("customer"))
    if account is not None and intent.get("payment_method"):
        service.add_card_from_setup_intent(db, account=account, setup_intent_id=intent["id"])


def _card_of(db: Session, method: dict) -> PaymentCard | None:
    return db.scalar(
        select(PaymentCard).where(PaymentCard.stripe_payment_method_id == method["id"])
    )


def _on_method_detached(db: Session, method: dict) -> None:
    card = _card_of(db, method)
    if card is not None:
        account = db.get(Account, card.account_id)
        service.remove_card(db, account=account, card=card)


def _on_method_updated(db: Session, method: dict) -> None:
    card = method.get("card") or {}
    if not card:
        return
    service.update_card_details(
        db,
        info=CardInfo(
            payment_method_id=method["id"],
            brand=str(card.get("brand") or "card"),
            last4=str(card.get("last4") or ""),
            exp_month=int(card["exp_month"]),
            exp_year=int(card["exp_year"]),
        ),
    )


def _on_charge_refunded(db: Session, charge: dict) -> None:
    refunds.record_refund(
        db,
        charge_id=charge["id"],
        payment_intent_id=_id(charge.get("payment_intent")),
        amount_refunded_minor=int(charge.get("amount_refunded") or 0),
    )


def _on_dispute_created(db: Session, dispute: dict) -> None:
    refunds.record_dispute(
        db,
        charge_id=_id(dispute.get("charge")) or "",
        payment_intent_id=_id(dispute.get("payment_intent")),
        dispute_id=str(dispute.get("id", "")),
        reason=str(dispute.get("reason") or ""),
    )


HANDLERS: dict[str, Callable[[Session, dict], None]] = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "setup_intent.succeeded": _on_setup_succeeded,
    "payment_method.detached": _on_method_detached,
    "payment_method.updated": _on_method_updated,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute_created,
}
