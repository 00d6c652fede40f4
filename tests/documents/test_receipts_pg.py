"""Receipt numbers under real parallel payments on PostgreSQL: gap-free, one per payment."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from portal import ledger, receipts
from portal.models import OutboxEmail, Payment, PaymentPurpose, PaymentStatus, Receipt
from tests.builders import make_account, make_reseller

pytestmark = pytest.mark.postgres
WORKERS = 12


def test_parallel_payments_get_gap_free_numbers_and_replays_add_none(pg_app, pg_db):
    reseller = make_reseller(pg_db)  # no counter row yet: the workers race to create it
    accounts = [make_account(pg_db, reseller=reseller) for _ in range(WORKERS // 2)]
    payments = []
    for n in range(WORKERS // 2):
        payment = Payment(
            account_id=accounts[n].id,
            purpose=PaymentPurpose.TOPUP,
            amount_minor=1000 + n,
            currency="GBP",
            status=PaymentStatus.SUCCEEDED,
            idempotency_key=f"p{n}",
        )
        pg_db.add(payment)
        payments.append(payment)
    pg_db.commit()
    factory = pg_app.extensions["session_factory"]
    start = threading.Barrier(WORKERS)

    def worker(n: int) -> int:
        # Two workers per payment: the second is a replay (webhook after the answer).
        payment_id = payments[n % len(payments)].id
        with pg_app.app_context(), factory() as session:
            payment = session.get(Payment, payment_id)
            start.wait()
            account = ledger.lock_account(session, payment.account_id)
            number = receipts.issue_receipt(session, account=account, payment=payment).number
            session.commit()
            return number

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        numbers = list(pool.map(worker, range(WORKERS)))
    pg_db.rollback()
    issued = pg_db.scalars(select(Receipt).order_by(Receipt.number)).all()
    assert [r.number for r in issued] == list(range(1, WORKERS // 2 + 1))
    assert sorted({r.payment_id for r in issued}) == sorted(p.id for p in payments)
    assert sorted(set(numbers)) == [r.number for r in issued]
    mails = pg_db.scalars(select(OutboxEmail.dedupe_key)).all()
    assert sorted(mails) == sorted(f"receipt:{r.id}" for r in issued)
