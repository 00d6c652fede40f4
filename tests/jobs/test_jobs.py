"""Scheduled jobs with an injected clock: each does its work once, at the right time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import jobs
from portal.ledger import grant_reserve, post_entry
from portal.models import (
    BillingModel,
    CardStatus,
    CreditChangeKind,
    CreditLimitChange,
    EntryKind,
    GrantStatus,
    JobLease,
    Notice,
    OutboxEmail,
    ReserveGrant,
    TopupCard,
)
from tests.builders import make_account, make_reseller

T0 = datetime(2030, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def app_config():
    return {"AFTER_DEBIT_CHECKS": "off"}


def test_temporary_credit_limit_reverts_at_valid_until(app, db):
    account = make_account(
        db,
        reseller=make_reseller(db),
        model=BillingModel.POSTPAID,
        credit_limit_minor=10000,
        temp_increase_minor=5000,
        temp_increase_valid_until=T0,
    )
    db.commit()
    assert jobs.run_job("credit_limit_revert", app=app, now=T0 - timedelta(seconds=1)) == 0
    db.rollback()
    db.expire_all()
    assert db.get(type(account), account.id).temp_increase_minor == 5000
    assert jobs.run_job("credit_limit_revert", app=app, now=T0) == 1
    db.rollback()
    db.expire_all()
    db.refresh(account)
    assert account.temp_increase_minor is None and account.temp_increase_valid_until is None
    assert account.credit_limit_minor == 10000
    history = db.scalars(select(CreditLimitChange)).all()
    assert [h.kind for h in history] == [CreditChangeKind.REVERT]
    # Running again finds nothing to do.
    assert jobs.run_job("credit_limit_revert", app=app, now=T0 + timedelta(hours=1)) == 0
    assert db.scalar(select(func.count()).select_from(CreditLimitChange)) == 1


def test_reserve_credit_remainder_expires_and_is_recorded(app, db):
    account = make_account(db, reseller=make_reseller(db))
    grant = grant_reserve(
        db,
        account=account,
        amount_minor=900,
        source="Downgrade from Complete to Professional",
        expires_at=T0,
        idempotency_key="g1",
    )
    grant.remaining_minor = 400
    db.commit()
    assert jobs.run_job("reserve_credit_expiry", app=app, now=T0 - timedelta(minutes=1)) == 0
    assert jobs.run_job("reserve_credit_expiry", app=app, now=T0) == 1
    db.rollback()
    db.expire_all()
    grant = db.get(ReserveGrant, grant.id)
    assert grant.status == GrantStatus.EXPIRED
    assert (grant.remaining_minor, grant.expired_minor, grant.amount_minor) == (0, 400, 900)
    assert grant.expired_at == T0


def _card(db, reseller, serial, expires_at, status=CardStatus.NEW):
    card = TopupCard(
        reseller_id=reseller.id,
        serial=serial,
        series="T",
        amount_minor=1000,
        currency="GBP",
        pin_hash=serial.ljust(64, "0"),
        pin_encrypted=b"x",
        pin_length=8,
        status=status,
        expires_at=expires_at,
    )
    db.add(card)
    return card


def test_topup_cards_expire_when_new_and_past_expiry(app, db):
    reseller = make_reseller(db)
    due = _card(db, reseller, "T-1", T0)
    later = _card(db, reseller, "T-2", T0 + timedelta(days=1))
    used = _card(db, reseller, "T-3", T0 - timedelta(days=1), CardStatus.ACTIVATED)
    never = _card(db, reseller, "T-4", None)
    db.commit()
    assert jobs.run_job("topup_card_expiry", app=app, now=T0) == 1
    db.rollback()
    db.expire_all()
    statuses = {c.serial: c.status for c in db.scalars(select(TopupCard))}
    assert statuses == {
        due.serial: CardStatus.EXPIRED,
        later.serial: CardStatus.NEW,
        used.serial: CardStatus.ACTIVATED,
        never.serial: CardStatus.NEW,
    }


def _move(db, account, amount_minor, key):
    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE if amount_minor < 0 else EntryKind.TOPUP,
        amount_minor=amount_minor,
        description="test",
        idempotency_key=key,
    )
    db.commit()


def _warnings(db):
    db.rollback()
    db.expire_all()
    return db.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()


def test_thresholds_notify_once_per_crossing_and_rearm(app, db):
    account = make_account(
        db, reseller=make_reseller(db), warning_thresholds="10, 5", email="low@example.test"
    )
    db.commit()
    _move(db, account, 2000, "t0")
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 0
    _move(db, account, -1200, "u1")  # 8.00: crosses 10
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 1
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 0  # still below: no repeat
    mails = _warnings(db)
    assert (
        len(mails) == 1
        and "£10.00" in mails[0].subject
        and mails[0].to_address == "low@example.test"
    )
    _move(db, account, -400, "u2")  # 4.00: crosses 5
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 1
    _move(db, account, 1600, "t1")  # 20.00: both re-arm
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 0
    db.rollback()
    db.expire_all()
    db.refresh(account)
    assert account.warnings_fired == ""
    _move(db, account, -1100, "u3")  # 9.00: crosses 10 again
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 1
    assert len(_warnings(db)) == 3
    assert db.scalar(select(func.count()).select_from(Notice)) == 3


def test_postpaid_percentages_are_of_the_permanent_limit(app, db):
    account = make_account(
        db,
        reseller=make_reseller(db),
        model=BillingModel.POSTPAID,
        credit_limit_minor=10000,
        warning_thresholds="50%",
        # A valid temporary increase does not move a percentage threshold.
        temp_increase_minor=10000,
        temp_increase_valid_until=T0 + timedelta(days=5),
    )
    db.commit()
    _move(db, account, -14000, "u1")  # available 60.00 with the increase: above 50.00
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 0
    _move(db, account, -1000, "u2")  # available 50.00: at the threshold
    assert jobs.run_job("funds_warnings", app=app, now=T0) == 1
    assert "50% of your credit limit" in _warnings(db)[0].subject
    assert "Credit limit warning" in _warnings(db)[0].subject


def test_a_held_lease_keeps_a_second_runner_out(app, db):
    now = datetime.now(UTC)
    db.add(
        JobLease(name="topup_card_expiry", holder="other", expires_at=now + timedelta(minutes=5))
    )
    db.commit()
    assert jobs.run_job("topup_card_expiry", app=app, now=T0) is None
    # An expired lease (its runner died) is taken over.
    db.get(JobLease, "topup_card_expiry").expires_at = now - timedelta(seconds=1)
    db.commit()
    assert jobs.run_job("topup_card_expiry", app=app, now=T0) == 0
    db.rollback()
    db.expire_all()
    lease = db.get(JobLease, "topup_card_expiry")
    assert lease.holder != "other" and lease.expires_at <= datetime.now(UTC)


def test_acquire_and_release_lease(app):
    with app.app_context():
        from portal import db as portal_db

        session = portal_db.new_session()
        now = datetime.now(UTC)
        assert jobs.acquire_lease(session, "x", "a", now)
        assert not jobs.acquire_lease(session, "x", "b", now)
        jobs.release_lease(session, "x", "a")
        assert jobs.acquire_lease(session, "x", "b", datetime.now(UTC))
        session.close()


def test_every_job_runs_on_an_empty_database(app):
    for name in jobs.JOBS:
        assert jobs.run_job(name, app=app, now=T0) == 0, name


def test_scheduler_configures_every_job(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    from portal.scheduler import configure

    scheduler = configure(BackgroundScheduler(timezone="UTC"), app)
    configured = {job.id: job for job in scheduler.get_jobs()}
    assert set(configured) == set(jobs.JOBS)
    for job in configured.values():
        assert job.coalesce is True and job.max_instances == 1


def test_scheduler_once_command(app, db):
    reseller = make_reseller(db)
    _card(db, reseller, "T-9", datetime.now(UTC) - timedelta(days=1))
    db.commit()
    result = app.test_cli_runner().invoke(args=["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "topup_card_expiry: 1" in result.output
    db.rollback()
    db.expire_all()
    assert db.scalar(select(TopupCard.status)) == CardStatus.EXPIRED
