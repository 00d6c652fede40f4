"""POST /webhooks/stripe: signed, stored once, each payment credited exactly once."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import db as portal_db
from portal.models import (
    Account,
    AuditLog,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentCard,
    PaymentPurpose,
    PaymentStatus,
    WebhookEvent,
)
from portal.payments import gateway, service, webhooks
from tests.builders import make_customer
from tests.payments.conftest import add_test_card, card_roles, event_body, post_event, sign


@pytest.fixture
def account_id(db):
    user = make_customer(db)
    db.commit()
    return user.account_id


def charged(app, account_id: int, amount: int = 2000, *, settle: bool = False) -> tuple[int, dict]:
    """A pending payment and a real succeeded PaymentIntent in localstripe for it.

    Without `settle` this is the moment when Stripe has charged but our synchronous
    code has not heard back yet.
    """
    card_id = add_test_card(app, account_id)
    with app.app_context():
        session = portal_db.session()
        payment = Payment(
            account_id=account_id,
            card_id=card_id,
            purpose=PaymentPurpose.TOPUP,
            amount_minor=amount,
            currency="GBP",
            idempotency_key=uuid.uuid4().hex,
        )
        session.add(payment)
        session.commit()
        result = gateway.charge_off_session(
            customer_id=session.get(Account, account_id).stripe_customer_id,
            payment_method_id=session.get(PaymentCard, card_id).stripe_payment_method_id,
            amount_minor=amount,
            currency="GBP",
            idempotency_key=payment.idempotency_key,
            metadata={"payment_id": str(payment.id), "account_id": str(account_id)},
        )
        if settle:
            service.settle_payment_succeeded(
                session,
                payment=payment,
                payment_intent_id=result.payment_intent_id,
                charge_id=result.charge_id,
            )
        intent = {
            "id": result.payment_intent_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": "gbp",
            "status": "succeeded",
            "latest_charge": result.charge_id,
            "metadata": {"payment_id": str(payment.id), "account_id": str(account_id)},
        }
        return payment.id, intent


def credits(db, account_id: int) -> tuple[int, int]:
    db.rollback()
    return (
        db.get(Account, account_id).balance_minor,
        db.query(LedgerEntry).filter_by(account_id=account_id).count(),
    )


# --- Signature ----------------------------------------------------------------------


def _post_raw(client, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/webhooks/stripe", data=body, headers=headers)


def test_bad_missing_or_stale_signatures_are_refused_and_change_nothing(
    app, client, db, account_id
):
    payment_id, intent = charged(app, account_id)
    body = event_body("payment_intent.succeeded", intent)
    cases = [
        None,
        "",
        "garbage",
        sign(body, secret="whsec_wrong"),
        sign(body, timestamp=int(time.time()) - 3600),  # replayed from an hour ago
        sign(body + b" "),  # the body was changed after signing
        "t=abc,v1=" + "0" * 64,
    ]
    for signature in cases:
        response = _post_raw(client, body, signature)
        assert response.status_code == 400, signature
    assert credits(db, account_id) == (0, 0)
    assert db.query(WebhookEvent).count() == 0
    assert db.get(Payment, payment_id).status == PaymentStatus.PENDING


def _signed_event(**fields) -> bytes:
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "created": int(time.time())}
    event.update(fields)
    return json.dumps(event).encode()


MALFORMED = [
    (b"not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (b"{}", "no valid id"),
    (json.dumps({"id": "evt_1", "type": "x"}).encode(), "no valid type"),
    (_signed_event(type="payment_intent.succeeded", data={"object": []}), "data.object"),
    (_signed_event(type="payment_intent.succeeded", data=[]), "data.object"),
    (_signed_event(type="payment_intent.succeeded", created="soon", data={"object": {}}), "time"),
    (
        _signed_event(
            type="payment_intent.succeeded",
            created=int(time.time()) + 3600,
            data={"object": {"id": "pi_1"}},
        ),
        "future",
    ),
    (_signed_event(type="payment_intent.succeeded", data={"object": {}}), "payment intent"),
    (
        _signed_event(type="payment_intent.succeeded", data={"object": {"id": ["pi_1"]}}),
        "payment intent",
    ),
    (
        _signed_event(
            type="charge.refunded",
            data={"object": {"id": "ch_1", "amount_refunded": "500"}},
        ),
        "amount_refunded",
    ),
    (
        _signed_event(
            type="charge.refunded",
            data={"object": {"id": "ch_1", "amount_refunded": -5, "payment_intent": "pi_1"}},
        ),
        "amount_refunded",
    ),
    (
        _signed_event(
            type="charge.dispute.funds_withdrawn",
            data={"object": {"id": "dp_1", "amount": 100, "charge": {"id": 7}}},
        ),
        "charge",
    ),
    (
        _signed_event(
            type="payment_method.updated",
            data={"object": {"id": "pm_1", "card": {"exp_month": "x", "exp_year": 2030}}},
        ),
        "",
    ),
]


@pytest.mark.parametrize("body,reason", MALFORMED)
def test_signed_but_malformed_events_are_kept_as_failed_and_answered_400(client, db, body, reason):
    response = _post_raw(client, body, sign(body))
    assert response.status_code in (200, 400)  # never a 500
    db.rollback()
    if reason:
        assert response.status_code == 400
        assert reason in response.get_json()["error"]
        row = db.query(WebhookEvent).one()
        assert (row.status, row.processed_at) == ("failed", None)
        assert reason in row.error
    assert db.query(LedgerEntry).count() == 0
    # Delivered again: still failed, still one row, still nothing moved.
    assert _post_raw(client, body, sign(body)).status_code == response.status_code
    assert db.query(WebhookEvent).count() <= 1


def test_the_webhook_needs_no_csrf_token(app_config, client, account_id, app):
    app.config["WTF_CSRF_ENABLED"] = True
    response = post_event(client, "customer.created", {"id": "cus_1", "object": "customer"})
    assert response.status_code == 200


# --- payment_intent.* ---------------------------------------------------------------


def test_the_same_webhook_delivered_twice_credits_once(app, client, db, account_id):
    payment_id, intent = charged(app, account_id)
    for _ in range(2):
        response = post_event(client, "payment_intent.succeeded", intent, event_id="evt_same")
        assert response.status_code == 200
    assert credits(db, account_id) == (2000, 1)
    assert db.query(WebhookEvent).count() == 1
    assert db.query(WebhookEvent).one().processed_at is not None
    payment = db.get(Payment, payment_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.stripe_payment_intent_id == intent["id"]  # found through the metadata
    # Stripe may also send a second, different event for the same payment.
    post_event(client, "payment_intent.succeeded", intent)
    assert credits(db, account_id) == (2000, 1)


def test_webhook_before_the_synchronous_answer_credits_once(app, client, db, account_id):
    payment_id, intent = charged(app, account_id)
    assert post_event(client, "payment_intent.succeeded", intent).status_code == 200
    assert credits(db, account_id) == (2000, 1)
    with app.app_context():  # now the synchronous answer arrives
        session = portal_db.session()
        payment = service.settle_payment_succeeded(
            session,
            payment=session.get(Payment, payment_id),
            payment_intent_id=intent["id"],
            charge_id=intent["latest_charge"],
        )
        assert payment.status == PaymentStatus.SUCCEEDED
    assert credits(db, account_id) == (2000, 1)


def test_synchronous_answer_before_the_webhook_credits_once(app, client, db, account_id):
    _, intent = charged(app, account_id, settle=True)
    assert credits(db, account_id) == (2000, 1)
    post_event(client, "payment_intent.succeeded", intent)
    assert credits(db, account_id) == (2000, 1)


def test_failed_after_succeeded_stays_succeeded(app, client, db, account_id):
    payment_id, intent = charged(app, account_id)
    post_event(client, "payment_intent.succeeded", intent)
    failed = {**intent, "status": "requires_payment_method", "last_payment_error": {"message": "x"}}
    assert post_event(client, "payment_intent.payment_failed", failed).status_code == 200
    db.rollback()
    assert db.get(Payment, payment_id).status == PaymentStatus.SUCCEEDED
    assert credits(db, account_id) == (2000, 1)


def test_payment_failed_marks_a_pending_payment_failed(app, client, db, account_id):
    payment_id, intent = charged(app, account_id)
    failed = {
        **intent,
        "status": "requires_payment_method",
        "last_payment_error": {"message": "Your card has insufficient funds."},
    }
    post_event(client, "payment_intent.payment_failed", failed)
    db.rollback()
    payment = db.get(Payment, payment_id)
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_message == "Your card has insufficient funds."
    assert credits(db, account_id) == (0, 0)


def test_events_of_unknown_payments_are_acknowledged(client, db):
    intent = {"id": "pi_unknown", "object": "payment_intent", "metadata": {"payment_id": "abc"}}
    assert post_event(client, "payment_intent.succeeded", intent).status_code == 200
    intent["metadata"] = {"payment_id": "99999999999999999999"}
    assert post_event(client, "payment_intent.succeeded", intent).status_code == 200
    assert db.query(LedgerEntry).count() == 0


def test_unknown_event_types_are_acknowledged_and_ignored(client, db):
    response = post_event(client, "invoice.finalized", {"id": "in_1", "object": "invoice"})
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored"
    row = db.query(WebhookEvent).one()
    assert (row.type, row.status) == ("invoice.finalized", "ignored")
    assert "does not act on invoice.finalized" in row.error
    assert db.query(LedgerEntry).count() == 0


# --- charge.* -----------------------------------------------------------------------


def _charge(intent: dict, amount_refunded: int) -> dict:
    return {
        "id": intent["latest_charge"],
        "object": "charge",
        "amount": intent["amount"],
        "amount_refunded": amount_refunded,
        "payment_intent": intent["id"],
        "refunded": amount_refunded == intent["amount"],
    }


def test_refund_debits_once_and_partial_refunds_add_up(app, client, db, account_id):
    payment_id, intent = charged(app, account_id, settle=True)
    post_event(client, "charge.refunded", _charge(intent, 500), event_id="evt_r1")
    post_event(client, "charge.refunded", _charge(intent, 500), event_id="evt_r1")  # duplicate
    post_event(client, "charge.refunded", _charge(intent, 500))  # another event, same total
    assert credits(db, account_id) == (1500, 2)
    assert db.get(Payment, payment_id).refunded_minor == 500
    post_event(client, "charge.refunded", _charge(intent, 2000))
    post_event(client, "charge.refunded", _charge(intent, 2000))
    assert credits(db, account_id) == (0, 3)
    refunds = db.query(LedgerEntry).filter_by(kind=EntryKind.REFUND).all()
    assert sorted(e.amount_minor for e in refunds) == [-1500, -500]
    payment = db.get(Payment, payment_id)
    assert (payment.status, payment.refunded_minor) == (PaymentStatus.REFUNDED, 2000)


def test_refund_of_a_payment_never_credited_debits_nothing(app, client, db, account_id):
    _, intent = charged(app, account_id)
    post_event(client, "charge.refunded", _charge(intent, 2000))
    assert credits(db, account_id) == (0, 0)


def test_dispute_flags_the_payment_and_tells_the_admins(app, client, db, account_id):
    payment_id, intent = charged(app, account_id, settle=True)
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": intent["latest_charge"],
        "amount": 2000,
        "reason": "fraudulent",
    }
    post_event(client, "charge.dispute.created", dispute)
    post_event(client, "charge.dispute.created", dispute)
    db.rollback()
    assert db.get(Payment, payment_id).disputed is True
    audit = db.query(AuditLog).filter_by(action="payment.dispute_created").one()
    assert audit.object_id == str(payment_id)
    assert audit.reseller_id == db.get(Account, account_id).reseller_id
    assert "fraudulent" in audit.after
    assert credits(db, account_id) == (2000, 1)  # the balance is untouched until a refund


# --- setup_intent.* and payment_method.* --------------------------------------------


def test_setup_intent_succeeded_links_the_card_once(app, client, db, account_id):
    with app.app_context():
        session = portal_db.session()
        customer_id = gateway.ensure_customer(session, session.get(Account, account_id))
        intent = gateway.create_setup_intent(customer_id)
        method = gateway.create_test_card(None, "4242424242424242")
        gateway.confirm_test_setup_intent(intent.id, method.payment_method_id)
    body = {
        "id": intent.id,
        "object": "setup_intent",
        "customer": customer_id,
        "payment_method": method.payment_method_id,
        "status": "succeeded",
    }
    post_event(client, "setup_intent.succeeded", body)
    post_event(client, "setup_intent.succeeded", body)
    assert card_roles(db, account_id) == {"4242": "primary"}


def test_payment_method_detached_forgets_the_card_and_promotes(app, client, db, account_id):
    primary = add_test_card(app, account_id)
    add_test_card(app, account_id, "5555555555554444")
    pm_id = db.get(PaymentCard, primary).stripe_payment_method_id
    post_event(client, "payment_method.detached", {"id": pm_id, "object": "payment_method"})
    assert card_roles(db, account_id) == {"4444": "primary"}


def test_payment_method_updated_refreshes_expiry(app, client, db, account_id):
    card_id = add_test_card(app, account_id)
    pm_id = db.get(PaymentCard, card_id).stripe_payment_method_id
    method = {
        "id": pm_id,
        "object": "payment_method",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2031},
    }
    post_event(client, "payment_method.updated", method)
    db.rollback()
    card = db.get(PaymentCard, card_id)
    assert (card.exp_month, card.exp_year) == (3, 2031)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["pi_1", "ch_1", "re_1", "dp_1", "pm_1", "cus_1", "seti_1", "succeeded"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "amount",
                    "amount_refunded",
                    "charge",
                    "payment_intent",
                    "status",
                    "refunds",
                    "data",
                    "metadata",
                    "latest_charge",
                    "customer",
                    "card",
                    "exp_month",
                    "exp_year",
                    "payment_method",
                    "reason",
                    "last_payment_error",
                    "payment_id",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    event_type=st.sampled_from(sorted(webhooks.HANDLERS)) | st.text(max_size=20),
    obj=JSON_VALUES,
)
def test_no_signed_event_body_is_ever_a_500(client, db, event_type, obj):
    body = _signed_event(type=event_type, data={"object": obj})
    response = _post_raw(client, body, sign(body))
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    db.rollback()
    row = db.query(WebhookEvent).filter_by(payload=body.decode()).one()
    assert row.status in ("processed", "ignored", "failed")
    assert (row.status == "failed") == bool(row.error) or row.status == "ignored"
