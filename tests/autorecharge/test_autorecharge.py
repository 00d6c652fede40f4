"""Threshold auto-recharge against localstripe: fallback, back-off, outages, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import autorecharge, jobs
from portal import db as portal_db
from portal.ledger import post_entry
from portal.models import (
    Account,
    AttemptStatus,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    EntryKind,
    LedgerEntry,
    OutboxEmail,
    Payment,
    PaymentCard,
    PaymentStatus,
    utcnow,
)
from portal.payments import gateway, service
from tests.builders import make_account, make_reseller

pytestmark = pytest.mark.stripe

GOOD = "4242424242424242"
DECLINES = "4000000000000341"


@pytest.fixture
def app_config(stripe_config):
    return {**stripe_config, "AFTER_DEBIT_CHECKS": "off"}


def add_card(app, account_id: int, number: str) -> int:
    with app.app_context():
        session = portal_db.new_session()
        account = session.get(Account, account_id)
        customer_id = gateway.ensure_customer(session, account)
        info = gateway.create_test_card(customer_id, number)
        card_id = service.link_card(session, account=account, info=info).id
        session.close()
        return card_id


def setup_account(app, db, cards, *, balance=300, threshold=500, amount=2000):
    account = make_account(db, reseller=make_reseller(db), email="ar@example.test")
    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=balance,
        description="Opening",
        idempotency_key="open",
    )
    db.add(
        AutoRechargeSetting(
            account_id=account.id,
            enabled=True,
            threshold_minor=threshold,
            amount_minor=amount,
            failure_count=0,
        )
    )
    db.commit()
    for number in cards:
        add_card(app, account.id, number)
    return account.id


def recharge(app, account_id, now=None):
    with app.app_context():
        session = portal_db.new_session()
        try:
            return autorecharge.recharge_if_needed(session, account_id=account_id, now=now)
        finally:
            session.close()


def state(db, account_id):
    db.rollback()
    db.expire_all()
    account = db.get(Account, account_id)
    credits = db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.AUTO_RECHARGE)
    )
    attempts = db.scalars(
        select(AutoRechargeAttempt)
        .where(AutoRechargeAttempt.account_id == account_id)
        .order_by(AutoRechargeAttempt.id)
    ).all()
    payments = db.scalars(
        select(Payment).where(Payment.account_id == account_id).order_by(Payment.id)
    ).all()
    return account, credits, attempts, payments


def test_primary_card_succeeds(app, db):
    account_id = setup_account(app, db, [GOOD])
    attempt = recharge(app, account_id)
    assert attempt.status == AttemptStatus.SUCCEEDED
    account, credits, attempts, payments = state(db, account_id)
    assert account.balance_minor == 2300 and credits == 1
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED]
    assert "primary card" in attempts[0].message
    # Above the threshold now: nothing more happens.
    assert recharge(app, account_id) is None
    assert state(db, account_id)[1] == 1


def test_not_due_above_threshold_or_disabled(app, db):
    account_id = setup_account(app, db, [GOOD], balance=501)
    assert recharge(app, account_id) is None
    setting = db.get(AutoRechargeSetting, account_id)
    setting.enabled = False
    db.commit()
    post_entry(
        db,
        account_id=account_id,
        kind=EntryKind.USAGE,
        amount_minor=-501,
        description="x",
        idempotency_key="u",
    )
    db.commit()
    assert recharge(app, account_id) is None
    assert state(db, account_id)[2] == []


def test_primary_declines_and_secondary_succeeds(app, db):
    account_id = setup_account(app, db, [DECLINES, GOOD])
    attempt = recharge(app, account_id)
    assert attempt.status == AttemptStatus.SUCCEEDED
    account, credits, attempts, payments = state(db, account_id)
    assert account.balance_minor == 2300 and credits == 1
    assert [p.status for p in payments] == [PaymentStatus.FAILED, PaymentStatus.SUCCEEDED]
    card = db.get(PaymentCard, attempts[0].card_id)
    assert card.last4 == "4242" and card.role.value == "secondary"
    assert "declined" in attempts[0].message.lower()


def test_both_cards_fail_backs_off_and_emails(app, db):
    account_id = setup_account(app, db, [DECLINES, DECLINES])
    now = utcnow()
    attempt = recharge(app, account_id, now=now)
    assert attempt.status == AttemptStatus.FAILED
    account, credits, attempts, payments = state(db, account_id)
    assert account.balance_minor == 300 and credits == 0
    assert [p.status for p in payments] == [PaymentStatus.FAILED, PaymentStatus.FAILED]
    setting = db.get(AutoRechargeSetting, account_id)
    assert setting.failure_count == 1
    assert setting.next_attempt_at == now + timedelta(hours=1)
    mail = db.scalar(select(OutboxEmail).where(OutboxEmail.account_id == account_id))
    assert (
        mail.subject == "Automatic top-up of £20.00 failed" and mail.to_address == "ar@example.test"
    )
    assert "We will try again after" in mail.body and "declined" in mail.body
    assert "<strong>£20.00</strong>" in mail.html_body and not mail.attachments
    # Backing off: nothing before the hour is up, then the next failure waits 6 hours.
    assert recharge(app, account_id, now=now + timedelta(minutes=59)) is None
    assert recharge(app, account_id, now=now + timedelta(minutes=61)).status == AttemptStatus.FAILED
    db.rollback()
    db.expire_all()
    setting = db.get(AutoRechargeSetting, account_id)
    assert setting.failure_count == 2
    assert setting.next_attempt_at == now + timedelta(minutes=61) + timedelta(hours=6)
    assert state(db, account_id)[0].balance_minor == 300


def _intents(localstripe_url) -> int:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{localstripe_url}/v1/payment_intents?limit=100",
        headers={"Authorization": "Bearer sk_test_localstripe"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return len(json.load(response)["data"])


def test_stripe_unreachable_then_back_charges_once(app, db, localstripe_url):
    from tests.conftest import free_port

    account_id = setup_account(app, db, [GOOD, GOOD])
    app.config["STRIPE_API_BASE"] = f"http://127.0.0.1:{free_port()}"  # nobody listens
    app.extensions.pop("stripe_client", None)
    attempt = recharge(app, account_id)
    assert attempt.status == AttemptStatus.IN_FLIGHT
    # A retry while Stripe is still down neither starts a second attempt nor tries the secondary.
    assert recharge(app, account_id).id == attempt.id
    account, credits, attempts, payments = state(db, account_id)
    assert account.balance_minor == 300 and credits == 0 and len(attempts) == 1
    assert [p.status for p in payments] == [PaymentStatus.PENDING]
    # Stripe is back: the reconciliation replays the same request, then the attempt completes.
    app.config["STRIPE_API_BASE"] = localstripe_url
    app.extensions.pop("stripe_client", None)
    with app.app_context():
        session = portal_db.new_session()
        service.reconcile_pending_payments(session, older_than=timedelta(0))
        session.close()
    assert recharge(app, account_id).status == AttemptStatus.SUCCEEDED
    account, credits, attempts, payments = state(db, account_id)
    assert account.balance_minor == 2300 and credits == 1 and len(payments) == 1
    assert _intents(localstripe_url) == 1


def test_a_debit_through_the_api_triggers_the_recharge(app, db):
    from portal import api_tokens

    account_id = setup_account(app, db, [GOOD], balance=1000)
    account = db.get(Account, account_id)
    token = api_tokens.create_token(db, reseller_id=account.reseller_id, name="switch")
    db.commit()
    app.config["AFTER_DEBIT_CHECKS"] = "inline"
    response = app.test_client().post(
        f"/api/v1/accounts/{account.number}/charges",
        json={"amount": "6.00", "description": "Call", "idempotency_key": "c1"},
        headers={"Authorization": f"Bearer {token.plaintext}"},
    )
    assert response.status_code == 201
    assert response.get_json()["balance"] == "4.00"  # the answer is the debit alone
    assert state(db, account_id)[0].balance_minor == 2400


def test_the_sweep_finds_only_due_accounts(app, db):
    due = setup_account(app, db, [GOOD])
    setup_account(app, db, [GOOD], balance=5000)
    with app.app_context():
        session = portal_db.new_session()
        assert autorecharge.due_account_ids(session, utcnow()) == [due]
        session.close()
    assert jobs.run_job("auto_recharge_sweep", app=app) == 1
    assert state(db, due)[0].balance_minor == 2300


@pytest.mark.postgres
def test_two_sweeps_at_once_charge_once(pg_app, pg_db):
    account_id = setup_account(pg_app, pg_db, [GOOD])
    barrier = threading.Barrier(2)
    errors = []

    def sweep():
        with pg_app.app_context():
            session = portal_db.new_session()
            try:
                barrier.wait()
                autorecharge.sweep(session)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                session.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    # Whatever the interleaving, a later sweep completes anything left in flight.
    with pg_app.app_context():
        session = portal_db.new_session()
        autorecharge.sweep(session)
        session.close()
    account, credits, attempts, payments = state(pg_db, account_id)
    assert credits == 1 and account.balance_minor == 2300
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED]
    assert [a.status for a in attempts] == [AttemptStatus.SUCCEEDED]
