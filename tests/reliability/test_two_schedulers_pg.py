"""Two scheduler processes at once against PostgreSQL, for every job in portal.jobs.JOBS.

A world is arranged where every job has exactly one thing to do. Two child processes
(each its own interpreter, app and engine) then run every job three times, starting at
the same instant, through run_job (the lease). A second test calls every job function
directly from two threads with their own engines, bypassing the lease (as when a lease
expires under a slow run): the jobs must be idempotent on their own.

Each job's effect must have happened exactly once. Adding a job to JOBS without adding
its effect here fails test_every_job_is_covered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from portal import db as portal_db
from portal import jobs
from portal.ledger import audit_balances, grant_reserve, post_entry
from portal.models import (
    Account,
    AutoRechargeSetting,
    BillingModel,
    CardStatus,
    CreditChangeKind,
    CreditLimitChange,
    EntryKind,
    GrantStatus,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    MailStatus,
    OutboxEmail,
    Payment,
    PaymentPurpose,
    PaymentStatus,
    Plan,
    ReserveGrant,
    Subscription,
    TopupCard,
    utcnow,
)
from tests.builders import make_account, make_reseller
from tests.conftest import build_app, free_port
from tests.payments.conftest import add_test_card

pytestmark = [pytest.mark.postgres, pytest.mark.stripe, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COVERED = {
    "auto_recharge_sweep",
    "credit_limit_revert",
    "reserve_credit_expiry",
    "topup_card_expiry",
    "funds_warnings",
    "billing_cycle",
    "invoice_collection",
    "email_outbox",
    "payment_reconciliation",
}

CHILD = """
import json, sys, time
from tests.conftest import build_app
from portal.jobs import JOBS, run_job

app = build_app(sys.argv[1], **json.loads(sys.argv[2]))
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # start with the other scheduler
results = {}
for _ in range(3):
    for name in JOBS:
        results.setdefault(name, []).append(run_job(name, app=app))
print(json.dumps(results))
"""


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def config(stripe_config, smtp) -> dict:
    return {
        **stripe_config,
        "AFTER_DEBIT_CHECKS": "off",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp[0],
        "MAIL_FROM": "billing@test",
    }


@pytest.fixture
def app_config(config):
    return config


def test_every_job_is_covered():
    assert set(jobs.JOBS) == COVERED, "add the new job's effect to this module"


def arrange(app, db) -> dict:
    """One thing to do for every job; returns the ids the checks need."""
    now = utcnow()
    reseller = make_reseller(db)
    ids = {}
    # auto_recharge_sweep: at or below its threshold, with a card.
    low = make_account(db, reseller=reseller, number="900001")
    db.add(
        AutoRechargeSetting(account_id=low.id, enabled=True, threshold_minor=500, amount_minor=2000)
    )
    ids["low"] = low.id
    # credit_limit_revert: a temporary increase whose Valid Until has passed.
    ids["raised"] = make_account(
        db,
        reseller=reseller,
        model=BillingModel.POSTPAID,
        credit_limit_minor=10000,
        temp_increase_minor=5000,
        temp_increase_valid_until=now - timedelta(minutes=1),
    ).id
    # reserve_credit_expiry: a grant past its expiry with a remainder.
    reserved = make_account(db, reseller=reseller)
    ids["grant"] = grant_reserve(
        db,
        account=reserved,
        amount_minor=900,
        source="downgrade",
        expires_at=now - timedelta(minutes=1),
        idempotency_key="g1",
    ).id
    # topup_card_expiry: a new card past its expiry.
    card = TopupCard(
        reseller_id=reseller.id,
        serial="SCHED-1",
        series="SCHED",
        amount_minor=1000,
        currency="GBP",
        pin_hash="f" * 64,
        pin_encrypted=b"x",
        pin_length=10,
        expires_at=now - timedelta(minutes=1),
    )
    db.add(card)
    # funds_warnings: below its warning threshold.
    warned = make_account(db, reseller=reseller, warning_thresholds="10", email="w@example.test")
    post_entry(
        db, account_id=warned.id, kind=EntryKind.TOPUP, amount_minor=800, description="In",
        idempotency_key="w",
    )  # fmt: skip
    ids["warned"] = warned.id
    # billing_cycle: a subscription whose last period ended.
    billed = make_account(db, reseller=reseller, email="bill@example.test")
    plan = Plan(name="Office", price_minor=4500, currency="GBP")
    db.add(plan)
    db.flush()
    db.add(
        Subscription(
            account_id=billed.id,
            plan_id=plan.id,
            anchor_day=1,
            started_on=date.today().replace(day=1),  # one period has started: one invoice
        )
    )
    # invoice_collection: a postpaid invoice past its due date.
    owing = make_account(db, reseller=reseller, model=BillingModel.POSTPAID, email="o@example.test")
    overdue = Invoice(
        reseller_id=reseller.id,
        account_id=owing.id,
        number=900,
        period_start=date(2030, 1, 1),
        period_end=date(2030, 1, 31),
        currency="GBP",
        subtotal_minor=1000,
        total_minor=1000,
        status=InvoiceStatus.OPEN,
        issued_at=now - timedelta(days=20),
        due_on=(now - timedelta(days=2)).date(),
    )
    db.add(overdue)
    db.flush()
    ids["overdue"] = overdue.id
    ids["billed"] = billed.id
    # payment_reconciliation: a payment left pending an hour ago (Stripe never answered).
    paying = make_account(db, reseller=reseller)
    db.commit()
    ids["card"] = card.id
    ids["paying"] = paying.id
    add_test_card(app, low.id)
    paying_card = add_test_card(app, paying.id)
    db.add(
        Payment(
            account_id=paying.id,
            card_id=paying_card,
            purpose=PaymentPurpose.TOPUP,
            amount_minor=1500,
            currency="GBP",
            idempotency_key="lost-answer",
            created_at=now - timedelta(hours=1),
        )
    )
    db.commit()
    return ids


def credits(db, account_id: int, kind: EntryKind) -> int:
    return db.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == kind)
    )


def assert_each_effect_once(app, db, ids: dict, inbox) -> None:
    # Mail queued by the last jobs of the last round: send it, as the next run would.
    jobs.run_job("email_outbox", app=app)
    db.rollback()
    db.expire_all()
    # auto_recharge_sweep
    assert credits(db, ids["low"], EntryKind.AUTO_RECHARGE) == 1
    assert db.get(Account, ids["low"]).balance_minor == 2000
    assert db.scalar(select(func.count()).where(Payment.account_id == ids["low"])) == 1
    # credit_limit_revert
    reverts = select(func.count()).where(
        CreditLimitChange.account_id == ids["raised"],
        CreditLimitChange.kind == CreditChangeKind.REVERT,
    )
    assert db.scalar(reverts) == 1
    assert db.get(Account, ids["raised"]).temp_increase_minor is None
    # reserve_credit_expiry
    grant = db.get(ReserveGrant, ids["grant"])
    assert (grant.status, grant.expired_minor, grant.remaining_minor) == (
        GrantStatus.EXPIRED,
        900,
        0,
    )
    # topup_card_expiry
    assert db.get(TopupCard, ids["card"]).status == CardStatus.EXPIRED
    # funds_warnings
    warnings = select(func.count()).where(OutboxEmail.account_id == ids["warned"])
    assert db.scalar(warnings) == 1
    # billing_cycle
    assert db.scalar(select(func.count()).where(Invoice.account_id == ids["billed"])) == 1
    assert credits(db, ids["billed"], EntryKind.PLAN_FEE) == 1
    # invoice_collection: overdue, one reminder (day 1 reached; day 7 not yet)
    overdue = db.get(Invoice, ids["overdue"])
    assert (overdue.status, overdue.reminders_sent) == (InvoiceStatus.OVERDUE, 1)
    reminders = select(func.count()).where(OutboxEmail.dedupe_key.like("invoice-reminder:%"))
    assert db.scalar(reminders) == 1
    # payment_reconciliation
    assert credits(db, ids["paying"], EntryKind.TOPUP) == 1
    payment = db.scalar(select(Payment).where(Payment.account_id == ids["paying"]))
    assert payment.status == PaymentStatus.SUCCEEDED
    # email_outbox: every queued mail went out exactly once.
    mails = db.scalars(select(OutboxEmail)).all()
    assert len(mails) >= 2 and all(m.status == MailStatus.SENT for m in mails)
    delivered = sorted(to for envelope in inbox.messages for to in envelope.rcpt_tos)
    assert delivered == sorted(m.to_address for m in mails)
    assert audit_balances(db) == []


def test_two_scheduler_processes_do_each_jobs_work_once(pg_app, pg_db, pg_url, config, smtp):
    ids = arrange(pg_app, pg_db)
    start_at = str(time.time() + 3)  # both children are up and connected by then
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, pg_url, json.dumps(config), start_at],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out))
    # Every job ran in both processes (some runs found the lease taken: None).
    for name in jobs.JOBS:
        runs = results[0][name] + results[1][name]
        assert len(runs) == 6, name
    assert_each_effect_once(pg_app, pg_db, ids, smtp[1])


def test_job_functions_are_idempotent_without_the_lease(pg_app, pg_db, pg_url, config, smtp):
    ids = arrange(pg_app, pg_db)
    apps = [build_app(pg_url, **config) for _ in range(2)]
    errors = []

    def runner(app, barrier):
        with app.app_context():
            session = portal_db.new_session()
            try:
                barrier.wait()
                function(session, utcnow())
            except Exception as exc:  # reported below
                errors.append((name, exc))
            finally:
                session.close()

    try:
        for _ in range(2):
            for name, (function, _interval) in jobs.JOBS.items():
                barrier = threading.Barrier(2)
                threads = [threading.Thread(target=runner, args=(a, barrier)) for a in apps]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=120)
    finally:
        for app in apps:
            app.extensions["engine"].dispose()
    assert errors == []
    assert_each_effect_once(pg_app, pg_db, ids, smtp[1])
