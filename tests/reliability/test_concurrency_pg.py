"""Real parallel workers on PostgreSQL: money is never created, lost or taken twice.

Covered elsewhere (not repeated here): one PIN redeemed by 20 workers and 200 crossing
transfers A->B / B->A in tests/billing/test_concurrency_pg.py; two auto-recharge sweeps at
once in tests/autorecharge/test_autorecharge.py. This module adds the double-clicked
top-up, debits racing an automatic top-up, and a temporary credit limit expiring while
charges are being authorised. After each: the ledger audit passes and totals add up.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import api_tokens, jobs
from portal.ledger import audit_balances, post_entry
from portal.models import (
    Account,
    AttemptStatus,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    BillingModel,
    CreditChangeKind,
    CreditLimitChange,
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentStatus,
    TopupProduct,
    utcnow,
)
from tests.builders import login, make_account, make_reseller, make_user
from tests.payments.conftest import HTMX, add_test_card
from tests.reliability.test_stripe_outage import intents_in_stripe

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def app_config(request):
    if "localstripe_url" in request.fixturenames:
        return {**request.getfixturevalue("stripe_config"), "AFTER_DEBIT_CHECKS": "inline"}
    return {"AFTER_DEBIT_CHECKS": "off"}


def in_parallel(workers: list) -> list:
    """Run the callables at the same instant, one thread each; return their results."""
    barrier = threading.Barrier(len(workers))
    results: list = [None] * len(workers)

    def run(index, work):
        barrier.wait()
        try:
            results[index] = work()
        except Exception as exc:  # returned, so the test shows it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def entries_sum(db, account_id: int, kind: EntryKind | None = None) -> tuple[int, int]:
    stmt = select(func.count(), func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
        LedgerEntry.account_id == account_id
    )
    if kind is not None:
        stmt = stmt.where(LedgerEntry.kind == kind)
    count, total = db.execute(stmt).one()
    return count, int(total)


@pytest.mark.stripe
def test_double_clicked_top_up_charges_and_credits_once(pg_app, pg_db, localstripe_url):
    user = make_user(pg_db, account=make_account(pg_db, reseller=make_reseller(pg_db)))
    product = TopupProduct(amount_minor=2000, currency="GBP", label="£20")
    pg_db.add(product)
    pg_db.commit()
    add_test_card(pg_app, user.account_id)
    form = {"product_id": str(product.id), "idempotency_key": uuid.uuid4().hex}
    clients = [pg_app.test_client() for _ in range(8)]
    for client in clients:  # the same person, several tabs / clicks
        login(client, user.email)

    def click(client):
        return lambda: client.post("/billing/balance/topup", data=form, headers=HTMX)

    responses = in_parallel([click(c) for c in clients])
    assert [r.status_code for r in responses] == [200] * len(clients), responses
    pages = [r.get_data(as_text=True) for r in responses]
    assert any("£20.00 added to your balance" in page for page in pages)
    assert all("Something went wrong" not in page for page in pages)

    pg_db.expire_all()
    assert pg_db.get(Account, user.account_id).balance_minor == 2000
    assert entries_sum(pg_db, user.account_id) == (1, 2000)
    payments = pg_db.scalars(select(Payment)).all()
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED]
    assert len(intents_in_stripe(localstripe_url)) == 1
    assert audit_balances(pg_db) == []


@pytest.mark.stripe
def test_debits_racing_an_automatic_top_up_recharge_once(pg_app, pg_db, localstripe_url):
    reseller = make_reseller(pg_db)
    account = make_account(pg_db, reseller=reseller, number="910001")
    post_entry(
        pg_db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=1000,
        description="Opening",
        idempotency_key="open",
    )
    pg_db.add(
        AutoRechargeSetting(
            account_id=account.id, enabled=True, threshold_minor=500, amount_minor=2000
        )
    )
    token = api_tokens.create_token(pg_db, reseller_id=reseller.id, name="switch")
    pg_db.commit()
    add_test_card(pg_app, account.id)
    headers = {"Authorization": f"Bearer {token.plaintext}"}

    def debit(n: int):
        client = pg_app.test_client()
        body = {"amount": "1.00", "description": "Call", "idempotency_key": f"call-{n}"}
        # Each 201 runs the after-debit check inline (AFTER_DEBIT_CHECKS=inline).
        return client.post("/api/v1/accounts/910001/charges", json=body, headers=headers)

    def sweep():
        return _sweep(pg_app)

    results = in_parallel([lambda n=n: debit(n) for n in range(10)] + [sweep, sweep])
    assert [r.status_code for r in results[:10]] == [201] * 10, results
    assert not [r for r in results[10:] if isinstance(r, Exception)], results
    _sweep(pg_app)  # a later sweep finishes anything left in flight

    pg_db.expire_all()
    assert entries_sum(pg_db, account.id, EntryKind.USAGE) == (10, -1000)
    assert entries_sum(pg_db, account.id, EntryKind.AUTO_RECHARGE) == (1, 2000)
    assert pg_db.get(Account, account.id).balance_minor == 1000 - 1000 + 2000
    attempts = pg_db.scalars(select(AutoRechargeAttempt)).all()
    assert [a.status for a in attempts] == [AttemptStatus.SUCCEEDED]
    assert pg_db.scalar(select(func.count()).select_from(Payment)) == 1
    assert len(intents_in_stripe(localstripe_url)) == 1
    assert audit_balances(pg_db) == []


def _sweep(app):
    from portal import autorecharge
    from portal import db as portal_db

    with app.app_context():
        session = portal_db.new_session()
        try:
            return autorecharge.sweep(session)
        finally:
            session.close()


def test_temporary_limit_expiring_while_charges_are_authorised(pg_app, pg_db):
    reseller = make_reseller(pg_db)
    valid_until = utcnow() + timedelta(seconds=1)
    account = make_account(
        pg_db,
        reseller=reseller,
        number="920001",
        model=BillingModel.POSTPAID,
        credit_limit_minor=1000,
        temp_increase_minor=1_000_000,  # never used up before it expires
        temp_increase_valid_until=valid_until,
    )
    token = api_tokens.create_token(pg_db, reseller_id=reseller.id, name="switch")
    pg_db.commit()
    headers = {"Authorization": f"Bearer {token.plaintext}"}
    # Run for at least 2 s (the increase expires after 1 s), then until a charge has been
    # refused after the expiry: on a slow machine the first requests alone can take seconds,
    # so the end is decided by what happened, not by a fixed time (capped at 30 s).
    stop_at = time.monotonic() + 2.0
    hard_stop = time.monotonic() + 30.0
    refused = threading.Event()

    def running() -> bool:
        now = time.monotonic()
        return now < hard_stop and (now < stop_at or not refused.is_set())

    def caller(worker: int):
        def work():
            client, statuses, n = pg_app.test_client(), [], 0
            while running():
                body = {"amount": "0.50", "description": "Call", "idempotency_key": f"{worker}-{n}"}
                status = client.post(
                    "/api/v1/accounts/920001/charges", json=body, headers=headers
                ).status_code
                statuses.append(status)
                if status == 402:
                    refused.set()
                n += 1
                time.sleep(0.01)
            return statuses

        return work

    def reverter():
        runs = 0
        while running():
            runs += jobs.run_job("credit_limit_revert", app=pg_app) or 0
            time.sleep(0.05)
        return runs

    results = in_parallel([caller(w) for w in range(4)] + [reverter])
    statuses = [s for worker in results[:4] for s in worker]
    assert set(statuses) <= {201, 402}, set(statuses)
    assert statuses.count(201) > 0 and statuses.count(402) > 0
    assert results[4] == 1  # reverted once

    pg_db.expire_all()
    account = pg_db.get(Account, account.id)
    assert account.temp_increase_minor is None and account.credit_limit_minor == 1000
    revert = pg_db.scalar(
        select(CreditLimitChange).where(CreditLimitChange.kind == CreditChangeKind.REVERT)
    )
    assert revert is not None
    usage = pg_db.scalars(
        select(LedgerEntry).where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.id)
    ).all()
    assert len(usage) == statuses.count(201)
    # Once the increase expired, no charge took the balance below the permanent limit
    # (a few milliseconds of slack: the check and the entry's timestamp are two reads of
    # the clock under the same row lock).
    for entry in usage:
        if entry.created_at >= valid_until + timedelta(milliseconds=20):
            assert entry.balance_after_minor >= -1000, entry.id
    assert sum(e.amount_minor for e in usage) == account.balance_minor
    assert audit_balances(pg_db) == []
