"""The ledger under real parallel writers on PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from portal import ledger
from portal.models import Account, EntryKind, LedgerEntry
from tests.builders import make_account, make_reseller

pytestmark = pytest.mark.postgres


def test_eight_threads_posting_500_entries_each(pg_app, pg_db):
    account = make_account(pg_db, reseller=make_reseller(pg_db))
    pg_db.commit()
    factory = pg_app.extensions["session_factory"]

    def worker(worker_id: int) -> None:
        for n in range(500):
            with factory() as session:
                ledger.post_entry(
                    session,
                    account_id=account.id,
                    kind=EntryKind.ADJUSTMENT,
                    amount_minor=(n % 7) - 2,
                    description="parallel",
                    idempotency_key=f"w{worker_id}-{n}",
                )
                session.commit()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(worker, range(8)))
    expected = 8 * sum((n % 7) - 2 for n in range(500))
    pg_db.expire_all()
    assert pg_db.get(Account, account.id).balance_minor == expected
    assert pg_db.scalar(select(func.count(LedgerEntry.id))) == 4000
    assert ledger.audit_balances(pg_db) == []
    # balance_after is a strictly consistent running total when read in id order
    rows = pg_db.execute(
        select(LedgerEntry.amount_minor, LedgerEntry.balance_after_minor).order_by(LedgerEntry.id)
    ).all()
    running = 0
    for amount, after in rows:
        running += amount
        assert after == running


def test_replayed_key_in_parallel_moves_money_once(pg_app, pg_db):
    account = make_account(pg_db, reseller=make_reseller(pg_db))
    pg_db.commit()
    factory = pg_app.extensions["session_factory"]

    def worker(_):
        with factory() as session:
            posting = ledger.post_entry(
                session,
                account_id=account.id,
                kind=EntryKind.TOPUP,
                amount_minor=1000,
                description="once",
                idempotency_key="double-click",
            )
            session.commit()
            return posting.entry.id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(worker, range(16)))
    pg_db.expire_all()
    assert len(ids) == 1
    assert pg_db.get(Account, account.id).balance_minor == 1000
