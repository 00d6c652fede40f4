"""Stripe events: stored once, checked, then dispatched through a type -> handler table.

Every signed event is kept (webhook_events) with its outcome: processed, ignored (a type
we do not act on) or failed with the reason (malformed content, or a refusal). A failed
event delivered again is processed again; any other repeat is a duplicate and does
nothing. What the events mean for a payment is decided in portal.payments.outcomes, so
the order and the number of deliveries never change the result.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.models import (
    Account,
    AutoRechargeSetting,
    PaymentCard,
    RefundStatus,
    WebhookEvent,
    utcnow,
)
from portal.payments import outcomes, service
from portal.payments.gateway import CardInfo, MalformedEvent, StripeEvent

log = logging.getLogger(__name__)
OBJECT_ID = re.compile(r"^[a-z]{1,8}_[A-Za-z0-9_]{1,72}$")
MAX_AMOUNT = 10**12


@dataclass(frozen=True)
class Answer:
    outcome: str  # processed, ignored, duplicate, failed
    status_code: int
    reason: str = ""


def receive_event(db: Session, *, event: StripeEvent, payload: bytes) -> Answer:
    """Store a verified event and process it once."""
    row = _store(db, event.id, event.type, payload)
    if row is None:
        return Answer("duplicate", 200)
    handler = HANDLERS.get(event.type)
    if handler is None:
        reason = f"Not handled: the portal does not act on {event.type} events."
        _finish(db, row.id, "ignored", reason)
        return Answer("ignored", 200, reason)
    try:
        handler(db, event.object)
    except MalformedEvent as exc:
        return _failed(db, row.id, exc.message, 400)
    except DomainError as exc:
        # A refusal (e.g. a card of another account): retrying cannot help.
        return _failed(db, row.id, exc.message, 200)
    except DBAPIError:
        db.rollback()
        raise  # the database is unavailable: a 503, and Stripe delivers again
    except Exception as exc:  # noqa: BLE001 - a bad event must never become a 500
        log.exception("Stripe event %s (%s) could not be processed", event.id, event.type)
        return _failed(db, row.id, f"{exc.__class__.__name__}: {exc}", 400)
    _finish(db, row.id, "processed")
    return Answer("processed", 200)


def receive_malformed(db: Session, *, error: MalformedEvent, payload: bytes) -> Answer:
    """Keep a signed event we cannot use, marked failed with the reason (answered 400)."""
    event_id = error.event_id or f"malformed:{hashlib.sha256(payload).hexdigest()[:40]}"
    row = _store(db, event_id, error.event_type, payload)
    if row is not None:
        _finish(db, row.id, "failed", error.message)
    return Answer("failed", 400, error.message)


def _failed(db: Session, row_id: int, reason: str, status_code: int) -> Answer:
    db.rollback()
    _finish(db, row_id, "failed", reason)
    return Answer("failed", status_code, reason)


def _store(db: Session, event_id: str, event_type: str, payload: bytes) -> WebhookEvent | None:
    row = WebhookEvent(
        stripe_event_id=event_id[:80],
        type=(event_type or "")[:80],
        payload=payload.decode("utf-8", "replace"),
        received_at=utcnow(),
        status="received",
    )
    db.add(row)
    try:
        db.commit()
        return row
    except IntegrityError:
        db.rollback()
    existing = db.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event_id[:80]))
    # Only an earlier attempt that failed is processed again; anything else is a duplicate.
    return existing if existing is not None and existing.status == "failed" else None


def _finish(db: Session, row_id: int, status: str, error: str = "") -> None:
    """Record the outcome; `error` holds the reason of a failed (or ignored) event."""
    row = db.get(WebhookEvent, row_id)
    row.status = status
    row.error = error[:500]
    row.processed_at = None if status == "failed" else utcnow()
    db.commit()


# --- Reading fields (a wrong shape is a MalformedEvent, never a crash) ----------------------


def _object_id(obj: dict, what: str) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not OBJECT_ID.match(value):
        raise MalformedEvent(f"The {what} has no valid id.")
    return value


def _ref(value, what: str) -> str | None:
    """An expandable reference: an id, an object with an id, or nothing."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not OBJECT_ID.match(value):
        raise MalformedEvent(f"The {what} reference is not valid.")
    return value


def _amount(obj: dict, field: str, *, default: int | None = None) -> int:
    value = obj.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_AMOUNT:
        raise MalformedEvent(f"{field} is not a valid amount.")
    return value


def _metadata(obj: dict) -> dict:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _text(obj: dict, field: str, limit: int = 200) -> str:
    value = obj.get(field)
    return value[:limit] if isinstance(value, str) else ""


# --- payment_intent.* -------------------------------------------------------------------


def _on_intent_succeeded(db: Session, intent: dict) -> None:
    service.settle_payment_succeeded(
        db,
        payment_intent_id=_object_id(intent, "payment intent"),
        charge_id=_ref(intent.get("latest_charge"), "charge"),
        metadata=_metadata(intent),
    )


def _failure_message(intent: dict, default: str) -> str:
    error = intent.get("last_payment_error")
    message = error.get("message") if isinstance(error, dict) else None
    return message[:300] if isinstance(message, str) and message else default


def _on_intent_failed(db: Session, intent: dict) -> None:
    service.settle_payment_failed(
        db,
        payment_intent_id=_object_id(intent, "payment intent"),
        message=_failure_message(intent, "The payment failed."),
        metadata=_metadata(intent),
    )


def _on_intent_canceled(db: Session, intent: dict) -> None:
    service.settle_payment_failed(
        db,
        payment_intent_id=_object_id(intent, "payment intent"),
        message="The payment was cancelled. No money was taken.",
        metadata=_metadata(intent),
    )


def _on_intent_requires_action(db: Session, intent: dict) -> None:
    service.settle_payment_failed(
        db,
        payment_intent_id=_object_id(intent, "payment intent"),
        message=_failure_message(intent, service.gateway.NEEDS_AUTHENTICATION),
        metadata=_metadata(intent),
        requires_action=True,
    )


def _on_intent_noted(db: Session, intent: dict) -> None:
    # created / processing: nothing moves yet; remember Stripe's ids for later events.
    service.note_intent(
        db,
        payment_intent_id=_object_id(intent, "payment intent"),
        charge_id=_ref(intent.get("latest_charge"), "charge"),
        metadata=_metadata(intent),
    )


# --- charge.* and refund.* --------------------------------------------------------------


def _refund_status(value) -> RefundStatus:
    try:
        return RefundStatus(value)
    except ValueError:
        raise MalformedEvent("The refund has no valid status.") from None


def _refund_fact(refund: dict, *, charge_id=None, intent_id=None) -> outcomes.RefundFact:
    return outcomes.RefundFact(
        refund_id=_object_id(refund, "refund"),
        charge_id=_ref(refund.get("charge"), "charge") or charge_id,
        payment_intent_id=_ref(refund.get("payment_intent"), "payment intent") or intent_id,
        amount_minor=_amount(refund, "amount"),
        status=_refund_status(refund.get("status", "succeeded")),
        reason=_text(refund, "reason"),
    )


def _on_charge_refunded(db: Session, charge: dict) -> None:
    charge_id = _object_id(charge, "charge")
    intent_id = _ref(charge.get("payment_intent"), "payment intent")
    total = _amount(charge, "amount_refunded")
    listed = charge.get("refunds")
    facts = []
    if isinstance(listed, dict) and isinstance(listed.get("data"), list):
        for refund in listed["data"]:
            if not isinstance(refund, dict):
                raise MalformedEvent("A refund in the list is not an object.")
            facts.append(_refund_fact(refund, charge_id=charge_id, intent_id=intent_id))
    # The total too: it covers refunds the (possibly truncated) list does not show.
    facts.append(outcomes.RefundFact(None, charge_id, intent_id, total))
    for fact in facts:
        outcomes.record_refund(db, fact, metadata=_metadata(charge))


def _on_refund(db: Session, refund: dict) -> None:
    fact = _refund_fact(refund)
    if not (fact.charge_id or fact.payment_intent_id):
        raise MalformedEvent("The refund names no charge.")
    outcomes.record_refund(db, fact, metadata=_metadata(refund))


# --- charge.dispute.* -------------------------------------------------------------------


def _dispute_handler(*, withdrawn: bool = False, reinstated: bool = False):
    def handle(db: Session, dispute: dict) -> None:
        fact = outcomes.DisputeFact(
            dispute_id=_object_id(dispute, "dispute"),
            charge_id=_ref(dispute.get("charge"), "charge"),
            payment_intent_id=_ref(dispute.get("payment_intent"), "payment intent"),
            amount_minor=_amount(dispute, "amount"),
            status=_text(dispute, "status", 30),
            reason=_text(dispute, "reason", 100),
            withdrawn=withdrawn,
            reinstated=reinstated,
        )
        if not (fact.charge_id or fact.payment_intent_id):
            raise MalformedEvent("The dispute names no charge.")
        outcomes.record_dispute(db, fact, metadata=_metadata(dispute))

    return handle


# --- setup_intent.*, payment_method.*, customer.* ---------------------------------------


def _account_of_customer(db: Session, customer) -> Account | None:
    customer_id = _ref(customer, "customer")
    if not customer_id:
        return None
    return db.scalar(select(Account).where(Account.stripe_customer_id == customer_id))


def _on_setup_succeeded(db: Session, intent: dict) -> None:
    # Usually the browser already told us; this catches a closed tab.
    intent_id = _object_id(intent, "setup intent")
    account = _account_of_customer(db, intent.get("customer"))
    if account is not None and _ref(intent.get("payment_method"), "payment method"):
        service.add_card_from_setup_intent(db, account=account, setup_intent_id=intent_id)


def _on_setup_noted(db: Session, intent: dict) -> None:
    # setup_failed / requires_action / canceled: the browser shows the outcome; the
    # card is simply not saved. Checked so a malformed one is still reported.
    _object_id(intent, "setup intent")


def _card_of(db: Session, method: dict) -> PaymentCard | None:
    return db.scalar(
        select(PaymentCard).where(
            PaymentCard.stripe_payment_method_id == _object_id(method, "payment method")
        )
    )


def _on_method_detached(db: Session, method: dict) -> None:
    card = _card_of(db, method)
    if card is not None:
        account = db.get(Account, card.account_id)
        service.remove_card(db, account=account, card=card)


def _on_method_updated(db: Session, method: dict) -> None:
    card = method.get("card")
    if not isinstance(card, dict) or _card_of(db, method) is None:
        return
    try:
        exp_month, exp_year = int(card["exp_month"]), int(card["exp_year"])
    except (KeyError, TypeError, ValueError):
        raise MalformedEvent("The card has no valid expiry.") from None
    if not (1 <= exp_month <= 12 and 2000 <= exp_year <= 2200):
        raise MalformedEvent("The card has no valid expiry.")
    service.update_card_details(
        db,
        info=CardInfo(
            payment_method_id=method["id"],
            brand=_text(card, "brand", 30) or "card",
            last4=_text(card, "last4", 4),
            exp_month=exp_month,
            exp_year=exp_year,
        ),
    )


def _on_customer_deleted(db: Session, customer: dict) -> None:
    account = _account_of_customer(db, _object_id(customer, "customer"))
    if account is None:
        return
    # Its cards went with it: forget them and switch automatic top-up off.
    for card in db.scalars(select(PaymentCard).where(PaymentCard.account_id == account.id)):
        db.delete(card)
    setting = db.get(AutoRechargeSetting, account.id)
    if setting is not None:
        setting.enabled = False
    account.stripe_customer_id = None
    db.commit()


HANDLERS: dict[str, Callable[[Session, dict], None]] = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "payment_intent.canceled": _on_intent_canceled,
    "payment_intent.requires_action": _on_intent_requires_action,
    "payment_intent.created": _on_intent_noted,
    "payment_intent.processing": _on_intent_noted,
    "charge.refunded": _on_charge_refunded,
    "charge.refund.updated": _on_refund,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.dispute.created": _dispute_handler(),
    "charge.dispute.updated": _dispute_handler(),
    "charge.dispute.funds_withdrawn": _dispute_handler(withdrawn=True),
    "charge.dispute.funds_reinstated": _dispute_handler(reinstated=True),
    "charge.dispute.closed": _dispute_handler(),
    "setup_intent.succeeded": _on_setup_succeeded,
    "setup_intent.setup_failed": _on_setup_noted,
    "setup_intent.requires_action": _on_setup_noted,
    "setup_intent.canceled": _on_setup_noted,
    "setup_intent.created": _on_setup_noted,
    "payment_method.detached": _on_method_detached,
    "payment_method.updated": _on_method_updated,
    "payment_method.automatically_updated": _on_method_updated,
    "customer.deleted": _on_customer_deleted,
}
