"""A webhook before the synchronous answer, delivered ten times, out of order, in parallel.

tests/payments/test_webhooks.py proves each case alone (twice, before/after the
synchronous answer, failed after succeeded). Here they come together: ten copies of the
same event plus other events for the same payment (a late "payment_failed" among them),
in several orders on SQLite and from ten parallel workers on PostgreSQL, with the
synchronous answer arriving in the middle. Always one credit, and the payment ends
SUCCEEDED with Stripe's ids.
"""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from portal import db as portal_db
from portal.ledger import audit_balances
from portal.models import Account, LedgerEntry, Payment, PaymentStatus, WebhookEvent
from portal.payments import service
from tests.builders import make_customer
from tests.payments.conftest import post_event
from tests.payments.test_webhooks import charged

pytestmark = pytest.mark.stripe


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


def deliveries(intent: dict) -> list[tuple[str, dict, str]]:
    """Ten copies of one succeeded event, five other succeeded events, three late failures."""
    failed = {
        **intent,
        "status": "requires_payment_method",
        "last_payment_error": {"message": "Your card was declined."},
    }
    same = [("payment_intent.succeeded", intent, "evt_storm_same")] * 10
    others = [("payment_intent.succeeded", intent, f"evt_storm_ok_{n}") for n in range(5)]
    late = [("payment_intent.payment_failed", failed, f"evt_storm_fail_{n}") for n in range(3)]
    return same + others + late


def synchronous_answer(app, payment_id: int, intent: dict) -> None:
    with app.app_context():
        session = portal_db.new_session()
        try:
            service.settle_payment_succeeded(
                session,
                payment=session.get(Payment, payment_id),
                payment_intent_id=intent["id"],
                charge_id=intent["latest_charge"],
            )
        finally:
            session.close()


def outcome(db, account_id: int, payment_id: int):
    db.rollback()
    db.expire_all()
    entries = db.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == account_id)
    )
    return db.get(Account, account_id).balance_minor, entries, db.get(Payment, payment_id)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ten_duplicates_out_of_order_before_the_answer_credit_once(app, client, db, seed):
    account_id = make_customer(db).account_id
    db.commit()
    payment_id, intent = charged(app, account_id, 2000)
    events = deliveries(intent)
    rng = random.Random(seed)
    rng.shuffle(events)
    if seed == 1:  # the worst order: every failure first, then the successes
        events.sort(key=lambda e: e[0] != "payment_intent.payment_failed")
    half = len(events) // 2
    for event_type, obj, event_id in events[:half]:
        assert post_event(client, event_type, obj, event_id=event_id).status_code == 200
    synchronous_answer(app, payment_id, intent)  # Stripe's answer to our own request
    for event_type, obj, event_id in events[half:]:
        assert post_event(client, event_type, obj, event_id=event_id).status_code == 200

    balance, entries, payment = outcome(db, account_id, payment_id)
    assert (balance, entries) == (2000, 1)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.stripe_payment_intent_id == intent["id"]
    assert payment.stripe_charge_id == intent["latest_charge"]
    assert db.query(WebhookEvent).count() == 9  # one row per distinct event id
    assert audit_balances(db) == []


@pytest.mark.postgres
def test_parallel_storm_on_postgresql_credits_once(pg_app, pg_db):
    account_id = make_customer(pg_db).account_id
    pg_db.commit()
    payment_id, intent = charged(pg_app, account_id, 2000)
    events = deliveries(intent)
    random.Random(7).shuffle(events)
    start = threading.Barrier(len(events) + 1)
    statuses: list[int] = []

    def deliver(event):
        client = pg_app.test_client()
        start.wait()
        statuses.append(post_event(client, event[0], event[1], event_id=event[2]).status_code)

    def answer():
        start.wait()
        synchronous_answer(pg_app, payment_id, intent)

    threads = [threading.Thread(target=deliver, args=(e,)) for e in events]
    threads.append(threading.Thread(target=answer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * len(events)
    balance, entries, payment = outcome(pg_db, account_id, payment_id)
    assert (balance, entries) == (2000, 1)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert audit_balances(pg_db) == []
