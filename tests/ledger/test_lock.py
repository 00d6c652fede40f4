"""The balance row lock, noticed by fast tests (issue 16).

The 8-thread PostgreSQL test in test_ledger_pg.py shows the lock under real load, but it
is slow and needs PostgreSQL. These tests notice the lock's removal in a moment: the
statement asks for FOR UPDATE and reloads the row, SQLite writers take the write lock up
front (BEGIN IMMEDIATE), and on PostgreSQL a second locker really waits.
"""

import sqlite3

import pytest
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from portal import ledger
from portal.db import make_engine
from portal.models import Account, EntryKind
from tests.builders import make_account, make_reseller


def _captured_account_selects(db, action):
    statements = []

    def capture(state):
        if state.is_select and "accounts" in str(state.statement):
            statements.append(state)

    event.listen(db, "do_orm_execute", capture)
    try:
        action()
    finally:
        event.remove(db, "do_orm_execute", capture)
    return statements


def test_post_entry_selects_the_account_for_update_and_reloads_it(db):
    account = make_account(db, reseller=make_reseller(db))
    db.commit()
    [state] = _captured_account_selects(
        db,
        lambda: ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=100,
            description="x",
            idempotency_key="k",
        ),
    )
    sql = str(state.statement.compile(dialect=postgresql.dialect()))
    assert sql.rstrip().endswith("FOR UPDATE")
    assert state.execution_options.get("populate_existing") is True


def test_lock_accounts_locks_each_once_in_ascending_id_order(db):
    reseller = make_reseller(db)
    a, b = make_account(db, reseller=reseller), make_account(db, reseller=reseller)
    db.commit()
    states = _captured_account_selects(db, lambda: ledger.lock_accounts(db, [b.id, a.id, b.id]))
    params = [s.statement.compile().params for s in states]
    assert [next(iter(p.values())) for p in params] == [a.id, b.id]


def test_the_lock_reads_the_balance_another_writer_committed(app, db):
    """A copy loaded before the lock must not be trusted: the update would be lost."""
    account = make_account(db, reseller=make_reseller(db))
    db.commit()
    assert db.get(Account, account.id).balance_minor == 0  # loaded, and kept after commit
    with app.extensions["engine"].begin() as other:
        other.execute(
            text("UPDATE accounts SET balance_minor = 500 WHERE id = :id"), {"id": account.id}
        )
    posting = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.ADJUSTMENT,
        amount_minor=100,
        description="x",
        idempotency_key="k",
    )
    assert posting.entry.balance_after_minor == 600
    assert db.get(Account, account.id).balance_minor == 600


def test_on_sqlite_a_second_writer_waits_for_the_first(app, db):
    """SQLite has no FOR UPDATE: a writing session takes the write lock when it begins."""
    account = make_account(db, reseller=make_reseller(db))
    db.commit()
    engine = make_engine(app.config["SQLALCHEMY_DATABASE_URI"])

    @event.listens_for(engine, "connect")
    def short_wait(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA busy_timeout=100")

    first, second = Session(engine), Session(engine)
    try:
        ledger.lock_account(first, account.id)
        with pytest.raises(OperationalError) as waited:
            ledger.lock_account(second, account.id)
        assert isinstance(waited.value.orig, sqlite3.OperationalError)
        assert "locked" in str(waited.value.orig)
        first.rollback()
        assert ledger.lock_account(second, account.id).id == account.id
    finally:
        first.close()
        second.close()
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_a_second_locker_waits_for_the_first(pg_app, pg_db):
    account = make_account(pg_db, reseller=make_reseller(pg_db))
    pg_db.commit()
    factory = pg_app.extensions["session_factory"]
    with factory() as first, factory() as second:
        ledger.lock_account(first, account.id)
        second.execute(text("SET LOCAL lock_timeout = '200ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            ledger.lock_account(second, account.id)
        second.rollback()
        first.rollback()
        assert ledger.lock_account(second, account.id).id == account.id
