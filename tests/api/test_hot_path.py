"""The charge's hot path: the token cached briefly (revocation honoured), after-debit checks
queued durably only when a threshold is reached, never lost when the process dies."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, update

from portal import api_tokens, jobs
from portal.ledger import post_entry
from portal.models import (
    Account,
    AccountStatus,
    ApiToken,
    EntryKind,
    FundsCheck,
    LedgerEntry,
    OutboxEmail,
    utcnow,
)
from tests.builders import make_account, make_reseller


@pytest.fixture
def app_config():
    return {"AFTER_DEBIT_CHECKS": "thread"}


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(api_tokens, "_clock", lambda: now[0])
    api_tokens.forget_cached()
    yield now
    api_tokens.forget_cached()


@pytest.fixture
def world(db, clock):
    reseller = make_reseller(db)
    account = make_account(db, reseller=reseller, number="700001", warning_thresholds="5.00")
    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=1000,
        description="Opening",
        idempotency_key="open",
    )
    token = api_tokens.create_token(db, reseller_id=reseller.id, name="switch")
    db.commit()
    return {
        "account": account,
        "token": token.token,
        "headers": {"Authorization": f"Bearer {token.plaintext}"},
    }


def charge(client, headers, key, amount="1.00"):
    return client.post(
        "/api/v1/accounts/700001/charges",
        json={"amount": amount, "description": "Call", "idempotency_key": key},
        headers=headers,
    )


def token_queries(app):
    seen = []

    def count(conn, cursor, statement, *args):
        if "FROM api_tokens" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(app.extensions["engine"], "before_cursor_execute", count)
    return seen


def test_the_token_is_looked_up_once_while_cached(app, client, world, clock):
    seen = token_queries(app)
    for n in range(3):
        assert charge(client, world["headers"], f"k{n}").status_code == 201
    assert len(seen) == 1
    clock[0] += api_tokens.CACHE_SECONDS + 0.1
    assert charge(client, world["headers"], "k9").status_code == 201
    assert len(seen) == 2


def test_a_revocation_elsewhere_is_honoured_within_the_cache_seconds(client, db, world, clock):
    assert charge(client, world["headers"], "a").status_code == 201
    # Another process revokes it (no chance to clear this process's cache).
    db.execute(update(ApiToken).where(ApiToken.id == world["token"].id).values(revoked_at=utcnow()))
    db.commit()
    clock[0] += api_tokens.CACHE_SECONDS - 1
    assert charge(client, world["headers"], "b").status_code == 201  # still inside the window
    clock[0] += 1.1
    assert charge(client, world["headers"], "c").status_code == 401
    clock[0] += 60
    assert charge(client, world["headers"], "d").status_code == 401  # never cached as live


def test_a_revocation_in_this_process_is_honoured_at_once(client, db, world):
    assert charge(client, world["headers"], "a").status_code == 201
    token = db.get(ApiToken, world["token"].id)
    assert api_tokens.revoke_token(db, token=token)
    db.commit()
    assert charge(client, world["headers"], "b").status_code == 401


def test_last_used_is_written_once_a_minute_not_per_charge(app, client, db, world, clock):
    writes = []
    event.listen(
        app.extensions["engine"],
        "before_cursor_execute",
        lambda conn, cur, statement, *a: (
            writes.append(statement) if statement.startswith("UPDATE api_tokens") else None
        ),
    )
    for n in range(3):
        assert charge(client, world["headers"], f"k{n}").status_code == 201
    assert len(writes) == 1
    db.rollback()
    assert db.get(ApiToken, world["token"].id).last_used_at is not None


def queued(db):
    db.rollback()
    return db.execute(select(FundsCheck.account_id, FundsCheck.seq)).all()


def test_no_check_is_queued_above_every_threshold(client, db, world, monkeypatch):
    calls = []
    monkeypatch.setattr(jobs, "after_charge", lambda app, account_id: calls.append(account_id))
    assert charge(client, world["headers"], "k1", "4.00").status_code == 201  # 6.00 left
    assert queued(db) == [] and calls == []


def test_a_crossing_queues_a_durable_check_that_survives_a_crash(
    app, client, db, world, monkeypatch
):
    # The process dies right after the commit: the in-process drain never runs.
    monkeypatch.setattr(jobs, "after_charge", lambda app, account_id: None)
    assert charge(client, world["headers"], "k1", "6.00").status_code == 201  # 4.00 <= 5.00
    account_id = world["account"].id
    assert queued(db) == [(account_id, 1)]
    assert charge(client, world["headers"], "k2", "1.00").status_code == 201
    assert queued(db) == [(account_id, 2)]  # still one row, bumped
    assert db.scalar(select(func.count()).select_from(OutboxEmail)) == 0
    # A restarted scheduler drains it (the auto-recharge sweep runs the queued checks first).
    assert jobs.run_job("auto_recharge_sweep", app=app) == 1
    assert queued(db) == []
    mails = db.scalars(select(OutboxEmail)).all()
    assert len(mails) == 1 and mails[0].account_id == account_id
    assert db.get(type(world["account"]), account_id, populate_existing=True).warnings_fired == (
        "5.00"
    )
    # Fired now: a further debit below the threshold queues nothing.
    assert charge(client, world["headers"], "k3", "1.00").status_code == 201
    assert queued(db) == []


def test_the_thread_drains_the_queue_after_the_commit(client, db, world):
    assert charge(client, world["headers"], "k1", "6.00").status_code == 201
    jobs.wait_for_queued_checks()
    assert queued(db) == []
    assert db.scalar(select(func.count()).select_from(OutboxEmail)) == 1


def test_a_failing_check_stays_queued(app, client, db, world, monkeypatch):
    monkeypatch.setattr(jobs, "after_charge", lambda app, account_id: None)
    assert charge(client, world["headers"], "k1", "6.00").status_code == 201

    def broken(*args, **kwargs):
        raise RuntimeError("mail store down")

    monkeypatch.setattr(jobs, "after_debit_checks", broken)
    assert jobs.run_job("auto_recharge_sweep", app=app) == 0
    assert len(queued(db)) == 1
    monkeypatch.undo()
    assert jobs.run_job("auto_recharge_sweep", app=app) == 1
    assert queued(db) == []


def test_a_refused_or_replayed_charge_queues_nothing(client, db, world, monkeypatch):
    calls = []
    monkeypatch.setattr(jobs, "after_charge", lambda app, account_id: calls.append(account_id))
    assert charge(client, world["headers"], "k1", "11.00").status_code == 402
    assert queued(db) == [] and calls == []
    assert charge(client, world["headers"], "k2", "6.00").status_code == 201
    assert len(calls) == 1
    db.rollback()
    db.execute(FundsCheck.__table__.delete())
    db.commit()
    replay = charge(client, world["headers"], "k2", "6.00")
    assert replay.status_code == 201 and len(calls) == 1
    assert queued(db) == []
    db.rollback()
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 2


def test_the_account_number_is_resolved_once_and_its_status_still_read_each_time(
    app, client, db, world
):
    seen = []
    event.listen(
        app.extensions["engine"],
        "before_cursor_execute",
        lambda conn, cur, statement, *a: (
            seen.append(statement)
            if statement.lstrip().startswith("SELECT accounts.id, accounts.currency")
            else None
        ),
    )
    assert charge(client, world["headers"], "k1").status_code == 201
    assert charge(client, world["headers"], "k2").status_code == 201
    assert len(seen) == 1
    db.rollback()
    db.get(Account, world["account"].id).status = AccountStatus.CLOSED
    db.commit()
    refused = charge(client, world["headers"], "k3")
    assert refused.status_code == 402 and refused.get_json()["error"] == "account_inactive"
    assert len(seen) == 1


@pytest.mark.postgres
def test_the_durable_queue_on_postgresql(pg_app, pg_db, clock, monkeypatch):
    reseller = make_reseller(pg_db)
    account = make_account(pg_db, reseller=reseller, number="700001", warning_thresholds="5.00")
    post_entry(
        pg_db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=1000,
        description="Opening",
        idempotency_key="open",
    )
    token = api_tokens.create_token(pg_db, reseller_id=reseller.id, name="switch")
    pg_db.commit()
    headers = {"Authorization": f"Bearer {token.plaintext}"}
    client = pg_app.test_client()
    monkeypatch.setattr(jobs, "after_charge", lambda app, account_id: None)  # dies after commit
    assert charge(client, headers, "k1", "6.00").status_code == 201
    assert charge(client, headers, "k2", "1.00").status_code == 201
    assert queued(pg_db) == [(account.id, 2)]
    assert jobs.run_job("auto_recharge_sweep", app=pg_app) == 1
    assert queued(pg_db) == []
    assert pg_db.scalar(select(func.count()).select_from(OutboxEmail)) == 1
