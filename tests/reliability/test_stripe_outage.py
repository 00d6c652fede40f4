"""Stripe goes away mid-test (a TCP proxy in front of localstripe is cut, then restored).

Cutting the proxy rather than killing localstripe keeps localstripe's state (a restarted
localstripe is empty), so "Stripe is back" sees the same customers and cards.

Note: localstripe ignores Idempotency-Key, so these tests cannot show Stripe collapsing a
replayed request whose first answer was lost; they prove that we (1) never credit
without Stripe's confirmation, (2) reuse one idempotency key for every retry of a
payment, and (3) end with exactly one PaymentIntent and one ledger credit.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal import api_tokens, jobs
from portal.ledger import audit_balances, post_entry
from portal.models import (
    Account,
    AttemptStatus,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentStatus,
    TopupProduct,
    utcnow,
)
from portal.payments import gateway
from tests.builders import login, make_account, make_reseller, make_user
from tests.payments.conftest import HTMX, add_test_card
from tests.reliability.tcp_proxy import TcpProxy

pytestmark = pytest.mark.stripe


@pytest.fixture
def stripe_proxy(localstripe_url):
    proxy = TcpProxy(int(localstripe_url.rsplit(":", 1)[1])).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def app_config(stripe_config, stripe_proxy):
    return {
        **stripe_config,
        "STRIPE_API_BASE": f"http://127.0.0.1:{stripe_proxy.port}",
        "AFTER_DEBIT_CHECKS": "inline",
    }


@pytest.fixture
def keys_sent(monkeypatch):
    """Every idempotency key our code sends with a charge (whether Stripe answers or not)."""
    sent: list[str] = []
    real = gateway.charge_off_session

    def recording(**kwargs):
        sent.append(kwargs["idempotency_key"])
        return real(**kwargs)

    monkeypatch.setattr(gateway, "charge_off_session", recording)
    return sent


def intents_in_stripe(localstripe_url: str) -> list[dict]:
    request = urllib.request.Request(
        f"{localstripe_url}/v1/payment_intents?limit=100",
        headers={"Authorization": "Bearer sk_test_localstripe"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["data"]


def money(db, account_id: int, kind: EntryKind) -> tuple[int, int]:
    db.rollback()
    db.expire_all()  # rollback() expires nothing when no transaction is open
    credits = db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == kind)
    )
    return db.get(Account, account_id).balance_minor, credits


def age_pending_payments(db, minutes: int = 11) -> None:
    """Time passes: the reconciliation job only looks at payments pending 10 minutes."""
    db.execute(
        update(Payment)
        .where(Payment.status == PaymentStatus.PENDING)
        .values(created_at=utcnow() - timedelta(minutes=minutes))
    )
    db.commit()


def test_top_up_while_stripe_is_down_then_back_charges_and_credits_once(
    app, db, stripe_proxy, localstripe_url, keys_sent
):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)))
    product = TopupProduct(amount_minor=2000, currency="GBP", label="£20")
    db.add(product)
    db.commit()
    add_test_card(app, user.account_id)
    client = app.test_client()
    login(client, user.email)
    form = {"product_id": str(product.id), "idempotency_key": uuid.uuid4().hex}

    stripe_proxy.stop()  # Stripe unreachable
    for _ in range(2):  # the customer clicks again while it is down
        response = client.post("/billing/balance/topup", data=form, headers=HTMX)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "did not confirm the payment yet" in html and "alert-error" in html
    assert money(db, user.account_id, EntryKind.TOPUP) == (0, 0)
    payment = db.scalar(select(Payment))
    assert payment.status == PaymentStatus.PENDING and db.query(Payment).count() == 1

    stripe_proxy.start()  # Stripe is back
    assert intents_in_stripe(localstripe_url) == []  # nothing reached it meanwhile
    client.post("/billing/balance/topup", data=form, headers=HTMX)  # a third click
    age_pending_payments(db)
    assert jobs.run_job("payment_reconciliation", app=app) == 1
    assert jobs.run_job("payment_reconciliation", app=app) == 0

    assert money(db, user.account_id, EntryKind.TOPUP) == (2000, 1)
    assert db.get(Payment, payment.id).status == PaymentStatus.SUCCEEDED
    intents = intents_in_stripe(localstripe_url)
    assert len(intents) == 1 and intents[0]["metadata"]["payment_id"] == str(payment.id)
    assert set(keys_sent) == {payment.idempotency_key}  # every retry: the same key
    # The same form once more, now that it succeeded: the confirmation, no second charge.
    html = client.post("/billing/balance/topup", data=form, headers=HTMX).get_data(as_text=True)
    assert "£20.00 added to your balance" in html
    assert money(db, user.account_id, EntryKind.TOPUP) == (2000, 1)
    assert len(intents_in_stripe(localstripe_url)) == 1
    assert audit_balances(db) == []


def test_auto_recharge_while_stripe_is_down_is_retried_later_with_the_same_key(
    app, db, stripe_proxy, localstripe_url, keys_sent
):
    reseller = make_reseller(db)
    account = make_account(db, reseller=reseller, number="810001")
    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=1000,
        description="Opening",
        idempotency_key="open",
    )
    db.add(
        AutoRechargeSetting(
            account_id=account.id, enabled=True, threshold_minor=500, amount_minor=2000
        )
    )
    token = api_tokens.create_token(db, reseller_id=reseller.id, name="switch")
    db.commit()
    add_test_card(app, account.id)
    add_test_card(app, account.id, "5555555555554444")  # a secondary that must NOT be tried

    stripe_proxy.stop()
    # The switch debits the account below its threshold: the debit itself must succeed.
    response = app.test_client().post(
        "/api/v1/accounts/810001/charges",
        json={"amount": "6.00", "description": "Call", "idempotency_key": "c1"},
        headers={"Authorization": f"Bearer {token.plaintext}"},
    )
    assert response.status_code == 201
    assert money(db, account.id, EntryKind.AUTO_RECHARGE) == (400, 0)
    attempt = db.scalar(select(AutoRechargeAttempt))
    assert attempt.status == AttemptStatus.IN_FLIGHT
    # The periodic jobs run while Stripe is still down: nothing new is started.
    age_pending_payments(db)
    jobs.run_job("payment_reconciliation", app=app)
    jobs.run_job("auto_recharge_sweep", app=app)
    db.rollback()
    assert db.query(AutoRechargeAttempt).count() == 1 and db.query(Payment).count() == 1
    assert money(db, account.id, EntryKind.AUTO_RECHARGE) == (400, 0)

    stripe_proxy.start()
    jobs.run_job("payment_reconciliation", app=app)  # replays the charge with its key
    jobs.run_job("auto_recharge_sweep", app=app)  # completes the attempt
    assert money(db, account.id, EntryKind.AUTO_RECHARGE) == (2400, 1)
    payment = db.scalar(select(Payment))
    assert payment.status == PaymentStatus.SUCCEEDED and db.query(Payment).count() == 1
    assert db.get(AutoRechargeAttempt, attempt.id).status == AttemptStatus.SUCCEEDED
    assert len(keys_sent) >= 2 and set(keys_sent) == {payment.idempotency_key}
    assert len(intents_in_stripe(localstripe_url)) == 1
    # Later runs change nothing.
    jobs.run_job("payment_reconciliation", app=app)
    jobs.run_job("auto_recharge_sweep", app=app)
    assert money(db, account.id, EntryKind.AUTO_RECHARGE) == (2400, 1)
    assert audit_balances(db) == []
