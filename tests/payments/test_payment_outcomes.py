"""Every payment outcome, in any order and any number of deliveries, moves money once.

One payment's life: it succeeds (webhook and our own synchronous answer), is refunded in
part (re_1) and then in full (re_2, also reported by charge.refund.updated), its charge is
disputed (created, funds withdrawn) and the dispute is won (funds reinstated, closed).
Whatever order these arrive in, each delivered up to three times (the same event id again,
or a new event about the same object), the final balance, the set of ledger entries and
the payment's status are the same.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portal import db as portal_db
from portal.ledger import audit_balances
from portal.models import (
    Account,
    AuditLog,
    LedgerEntry,
    OutboxEmail,
    Payment,
    PaymentDispute,
    PaymentPurpose,
    PaymentRefund,
    PaymentStatus,
    Role,
    WebhookEvent,
)
from portal.payments import service
from tests.builders import make_customer, make_user
from tests.payments.conftest import post_event

AMOUNT = 1000  # £10.00


@pytest.fixture(autouse=True)
def ledger_audit_clean(request):
    # Taken before the test runs, so the session outlives this check.
    sessions = [request.getfixturevalue(n) for n in ("db", "pg_db") if n in request.fixturenames]
    yield
    for session in sessions:
        session.rollback()
        assert audit_balances(session) == []


def new_payment(db, amount: int = AMOUNT) -> tuple[int, int, dict]:
    """A pending card payment, as committed before Stripe is called, and Stripe's names for it."""
    account_id = make_customer(db).account_id
    payment = Payment(
        account_id=account_id,
        purpose=PaymentPurpose.TOPUP,
        amount_minor=amount,
        currency="GBP",
        idempotency_key=uuid.uuid4().hex,
    )
    db.add(payment)
    db.commit()
    tag = uuid.uuid4().hex[:12]
    ids = {
        "payment_id": payment.id,
        "pi": f"pi_{tag}",
        "ch": f"ch_{tag}",
        "re_1": f"re_{tag}1",
        "re_2": f"re_{tag}2",
        "dp": f"dp_{tag}",
    }
    return account_id, payment.id, ids


def life_events(ids: dict, amount: int = AMOUNT) -> dict[str, tuple[str, dict]]:
    """The Stripe events of one payment's life, by name."""
    intent = {
        "id": ids["pi"],
        "object": "payment_intent",
        "amount": amount,
        "currency": "gbp",
        "status": "succeeded",
        "latest_charge": ids["ch"],
        "metadata": {"payment_id": str(ids["payment_id"])},
    }
    part = amount * 3 // 10

    def refund(name, value):
        return {
            "id": ids[name],
            "object": "refund",
            "amount": value,
            "charge": ids["ch"],
            "payment_intent": ids["pi"],
            "status": "succeeded",
        }

    def charge(refunds):
        return {
            "id": ids["ch"],
            "object": "charge",
            "amount": amount,
            "amount_refunded": sum(r["amount"] for r in refunds),
            "payment_intent": ids["pi"],
            "refunded": sum(r["amount"] for r in refunds) == amount,
            "refunds": {"object": "list", "data": refunds},
        }

    def dispute(status):
        return {
            "id": ids["dp"],
            "object": "dispute",
            "amount": amount,
            "charge": ids["ch"],
            "payment_intent": ids["pi"],
            "reason": "fraudulent",
            "status": status,
        }

    first, second = refund("re_1", part), refund("re_2", amount - part)
    return {
        "succeeded": ("payment_intent.succeeded", intent),
        "partial_refund": ("charge.refunded", charge([first])),
        "full_refund": ("charge.refunded", charge([first, second])),
        "refund_updated": ("charge.refund.updated", second),
        "dispute_created": ("charge.dispute.created", dispute("needs_response")),
        "funds_withdrawn": ("charge.dispute.funds_withdrawn", dispute("needs_response")),
        "funds_reinstated": ("charge.dispute.funds_reinstated", dispute("won")),
        "dispute_closed": ("charge.dispute.closed", dispute("won")),
    }


def synchronous_answer(app, payment_id: int, ids: dict) -> None:
    """Stripe's answer to our own PaymentIntent request, arriving whenever it does."""
    with app.app_context():
        session = portal_db.new_session()
        try:
            service.settle_payment_succeeded(
                session,
                payment=session.get(Payment, payment_id),
                payment_intent_id=ids["pi"],
                charge_id=ids["ch"],
            )
        finally:
            session.close()


def outcome(db, account_id: int, payment_id: int):
    db.rollback()
    entries = db.scalars(select(LedgerEntry).where(LedgerEntry.account_id == account_id)).all()
    payment = db.get(Payment, payment_id)
    ledger = sorted((e.kind.value, e.amount_minor, e.idempotency_key) for e in entries)
    return (
        db.get(Account, account_id).balance_minor,
        ledger,
        payment.status,
        payment.refunded_minor,
    )


def expected(payment_id: int, ids: dict):
    part = AMOUNT * 3 // 10
    ledger = sorted(
        [
            ("topup", AMOUNT, f"payment:{payment_id}"),
            ("refund", -part, f"refund:{ids['re_1']}"),
            ("refund", -(AMOUNT - part), f"refund:{ids['re_2']}"),
            ("chargeback", -AMOUNT, f"dispute-withdrawn:{ids['dp']}"),
            ("chargeback_reversal", AMOUNT, f"dispute-reinstated:{ids['dp']}"),
        ]
    )
    return (AMOUNT - part - (AMOUNT - part) - AMOUNT + AMOUNT, ledger, PaymentStatus.WON, AMOUNT)


NAMES = [
    "succeeded",
    "partial_refund",
    "full_refund",
    "refund_updated",
    "dispute_created",
    "funds_withdrawn",
    "funds_reinstated",
    "dispute_closed",
]


@st.composite
def deliveries(draw):
    """Every event 1-3 times (a redelivery keeps the event id, a new event gets a new one),
    plus the synchronous answer once, all in any order."""
    items = []
    for name in NAMES:
        for copy in range(draw(st.integers(1, 3))):
            same_id = copy == 0 or draw(st.booleans())
            items.append((name, 0 if same_id else copy))
    items.append(("sync", 0))
    return draw(st.permutations(items))


@pytest.fixture
def app_config():
    return {}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=deliveries())
def test_any_order_and_any_number_of_deliveries_give_the_same_result(app, client, db, order):
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    for name, copy in order:
        if name == "sync":
            synchronous_answer(app, payment_id, ids)
            continue
        event_type, obj = events[name]
        event_id = f"evt_{ids['pi']}_{name}_{copy}"
        assert post_event(client, event_type, obj, event_id=event_id).status_code == 200
    assert outcome(db, account_id, payment_id) == expected(payment_id, ids)
    # One chargeback, one dispute notice for the admins, however often it was delivered.
    assert db.query(PaymentDispute).filter_by(payment_id=payment_id).one().status == "won"
    assert db.query(PaymentRefund).filter_by(payment_id=payment_id, cumulative=False).count() == 2
    assert audit_balances(db) == []


def test_refund_before_success_is_not_lost(app, client, db):
    """The measured defect: charge.refunded first, then payment_intent.succeeded.

    Before the fix the refund was dropped (no payment matched yet) and the customer kept
    the whole £10 that Stripe had refunded.
    """
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    refund = {**events["full_refund"][1], "refunds": None}  # Stripe sends only the total
    refund.pop("refunds")
    assert post_event(client, "charge.refunded", refund).status_code == 200
    assert post_event(client, *events["succeeded"]).status_code == 200
    balance, ledger, status, refunded = outcome(db, account_id, payment_id)
    assert balance == 0
    assert status == PaymentStatus.REFUNDED
    assert refunded == AMOUNT
    assert [(kind, amount) for kind, amount, _ in ledger] == [
        ("refund", -AMOUNT),
        ("topup", AMOUNT),
    ]


def test_refund_before_the_synchronous_answer_is_applied_with_the_credit(app, client, db):
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    assert post_event(client, *events["partial_refund"]).status_code == 200
    assert outcome(db, account_id, payment_id)[:2] == (0, [])  # nothing moves before the credit
    synchronous_answer(app, payment_id, ids)
    balance, _, status, refunded = outcome(db, account_id, payment_id)
    assert (balance, status, refunded) == (AMOUNT - 300, PaymentStatus.PARTIALLY_REFUNDED, 300)


@pytest.mark.parametrize(
    "totals", [[300, 1000], [1000, 300], [1000, 1000, 300], [300, 300, 1000, 300]]
)
def test_refunded_totals_without_refund_ids_give_the_same_balance_in_any_order(client, db, totals):
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    post_event(client, *events["succeeded"])
    for total in totals:
        charge = {k: v for k, v in events["full_refund"][1].items() if k != "refunds"}
        post_event(client, "charge.refunded", {**charge, "amount_refunded": total})
    balance, _, status, refunded = outcome(db, account_id, payment_id)
    assert (balance, status, refunded) == (0, PaymentStatus.REFUNDED, AMOUNT)
    # Then the refunds arrive by id: nothing is debited twice.
    post_event(client, *events["full_refund"])
    assert outcome(db, account_id, payment_id)[0] == 0


def test_a_refund_that_fails_later_gives_the_money_back_once(client, db):
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    post_event(client, *events["succeeded"])
    post_event(client, *events["partial_refund"])
    failed = {**events["partial_refund"][1]["refunds"]["data"][0], "status": "failed"}
    for _ in range(2):
        post_event(client, "charge.refund.updated", failed)
    # A late "succeeded" copy of the refund does not debit it again.
    post_event(client, *events["partial_refund"])
    balance, ledger, status, refunded = outcome(db, account_id, payment_id)
    assert (balance, status, refunded) == (AMOUNT, PaymentStatus.SUCCEEDED, 0)
    assert sorted(amount for _, amount, _ in ledger) == [-300, 300, AMOUNT]


def test_chargeback_debits_notifies_the_admins_and_reinstatement_credits(client, db):
    account_id, payment_id, ids = new_payment(db)
    account = db.get(Account, account_id)
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=account.reseller)
    db.commit()
    events = life_events(ids)
    post_event(client, *events["succeeded"])
    dispute_created = {**events["funds_withdrawn"][1]}
    post_event(client, "charge.dispute.created", dispute_created)
    db.rollback()
    assert db.get(Payment, payment_id).status == PaymentStatus.DISPUTED
    assert db.get(Account, account_id).balance_minor == AMOUNT  # nothing withdrawn yet
    for _ in range(2):
        post_event(client, *events["funds_withdrawn"])
    balance, ledger, status, _ = outcome(db, account_id, payment_id)
    assert (balance, status) == (0, PaymentStatus.DISPUTED)
    assert ("chargeback", -AMOUNT, f"dispute-withdrawn:{ids['dp']}") in ledger
    mails = db.query(OutboxEmail).filter_by(to_address=admin.email).all()
    assert sorted(m.subject.split(" ")[0] for m in mails) == ["Card", "Chargeback"]
    assert db.query(AuditLog).filter_by(action="payment.chargeback").count() == 1
    post_event(client, *events["funds_reinstated"])
    closed = {**events["funds_reinstated"][1], "status": "won"}
    post_event(client, "charge.dispute.closed", closed)
    balance, _, status, _ = outcome(db, account_id, payment_id)
    assert (balance, status) == (AMOUNT, PaymentStatus.WON)


def test_a_lost_dispute_keeps_the_chargeback(client, db):
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    lost = {**events["funds_withdrawn"][1], "status": "lost"}
    post_event(client, "charge.dispute.closed", lost)  # closed first
    post_event(client, *events["funds_withdrawn"])  # a late "needs_response" does not reopen
    post_event(client, *events["succeeded"])
    balance, _, status, _ = outcome(db, account_id, payment_id)
    assert (balance, status) == (0, PaymentStatus.LOST)


def test_intent_events_move_the_status_but_never_the_money_twice(client, db):
    account_id, payment_id, ids = new_payment(db)
    events = life_events(ids)
    intent = events["succeeded"][1]
    post_event(client, "payment_intent.processing", {**intent, "status": "processing"})
    db.rollback()
    assert db.get(Payment, payment_id).stripe_payment_intent_id == ids["pi"]
    post_event(client, "payment_intent.requires_action", {**intent, "status": "requires_action"})
    db.rollback()
    payment = db.get(Payment, payment_id)
    assert (payment.status, payment.needs_authentication) == (PaymentStatus.REQUIRES_ACTION, True)
    post_event(client, *events["succeeded"])
    post_event(client, "payment_intent.canceled", {**intent, "status": "canceled"})
    balance, _, status, _ = outcome(db, account_id, payment_id)
    assert (balance, status) == (AMOUNT, PaymentStatus.SUCCEEDED)


def test_customer_deleted_forgets_the_cards_and_the_customer(client, db):
    from portal.models import AutoRechargeSetting, PaymentCard

    account_id = make_customer(db).account_id
    account = db.get(Account, account_id)
    account.stripe_customer_id = "cus_gone"
    db.add(
        PaymentCard(
            account_id=account_id,
            stripe_payment_method_id="pm_gone",
            brand="visa",
            last4="4242",
            exp_month=1,
            exp_year=2031,
        )
    )
    db.add(AutoRechargeSetting(account_id=account_id, enabled=True, amount_minor=500))
    db.commit()
    body = {"id": "cus_gone", "object": "customer", "deleted": True}
    assert post_event(client, "customer.deleted", body).status_code == 200
    db.rollback()
    assert db.get(Account, account_id).stripe_customer_id is None
    assert db.query(PaymentCard).filter_by(account_id=account_id).count() == 0
    assert db.get(AutoRechargeSetting, account_id).enabled is False
    assert db.query(WebhookEvent).one().status == "processed"


@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(3))
def test_the_same_events_in_parallel_on_postgresql(pg_app, pg_db, round_):
    account_id, payment_id, ids = new_payment(pg_db)
    events = life_events(ids)
    jobs = []
    for name in NAMES:
        for copy in range(3):
            jobs.append((name, copy % 2))  # two deliveries of one event id, one new event
    start = threading.Barrier(len(jobs) + 1)
    statuses: list[int] = []

    def deliver(name, copy):
        client = pg_app.test_client()
        start.wait()
        event_type, obj = events[name]
        event_id = f"evt_{ids['pi']}_{name}_{copy}"
        statuses.append(post_event(client, event_type, obj, event_id=event_id).status_code)

    def answer():
        start.wait()
        synchronous_answer(pg_app, payment_id, ids)

    threads = [threading.Thread(target=deliver, args=job) for job in jobs]
    threads.append(threading.Thread(target=answer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * len(jobs)
    assert outcome(pg_db, account_id, payment_id) == expected(payment_id, ids)
    assert pg_db.query(WebhookEvent).filter(WebhookEvent.status != "processed").count() == 0
    assert audit_balances(pg_db) == []
