"""SIGKILL in the middle of long work (PostgreSQL): nothing half done is visible, a rerun
completes the work exactly once.

The work runs in a child process (its own interpreter, engine and connections), which the
test kills with SIGKILL once the database shows it is part-way through. PostgreSQL then
rolls back the child's open transaction, exactly as after a crash or an OOM kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal import db as portal_db
from portal import invoices, topup_cards, vouchers
from portal.domain import DomainError
from portal.ledger import audit_balances
from portal.models import (
    Account,
    BatchStatus,
    BillingModel,
    EntryKind,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    OutboxEmail,
    PaymentAllocation,
    Plan,
    Reseller,
    Role,
    Subscription,
    TopupCard,
    TopupCardBatch,
    User,
    utcnow,
)
from portal.pins import vault
from tests.builders import make_account, make_reseller, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MARCH_16 = datetime(2030, 3, 16, 2, 0, tzinfo=UTC)

# The child: the same app factory as the tests, on the test's PostgreSQL schema.
CHILD = """
import sys
from datetime import datetime
from tests.conftest import build_app
from portal import db, invoices, topup_cards

app = build_app(sys.argv[1])
with app.app_context():
    session = db.new_session()
    if sys.argv[2] == "cards":
        topup_cards.run_batch(session, batch_id=int(sys.argv[3]))
    else:
        invoices.generate_due_invoices(session, now=datetime.fromisoformat(sys.argv[3]))
"""


def run_child(pg_url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, pg_url, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when(child: subprocess.Popen, progressed, timeout: float = 120) -> None:
    """SIGKILL the child as soon as `progressed()` says it is part-way through."""
    deadline = time.monotonic() + timeout
    while not progressed():
        if child.poll() is not None:
            pytest.fail(f"the child ended before it could be killed: {child.stderr.read()!r}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the child made no progress")
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def finish(child: subprocess.Popen) -> None:
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err.decode()


# --- 100,000 top-up cards ----------------------------------------------------------------


def test_killed_card_generation_leaves_no_visible_half_batch_and_a_rerun_finishes_once(
    pg_app, pg_db, pg_url
):
    reseller = make_reseller(pg_db)
    make_user(pg_db, role=Role.OPERATOR, email="op@kill.test")
    customer = make_user(pg_db, account=make_account(pg_db, reseller=reseller))
    pg_db.commit()
    with pg_app.app_context():
        batch = topup_cards.plan_batch(
            portal_db.session(),
            reseller_id=reseller.id,
            amount_minor=500,
            quantity=100_000,
            series="KILL",
            pin_length=12,
            expires_at=utcnow() + timedelta(days=365),
            actor_user_id=None,
        )
    batch_id = batch.id

    def generated() -> int:
        pg_db.rollback()
        return pg_db.scalar(select(TopupCardBatch.generated).where(TopupCardBatch.id == batch_id))

    child = run_child(pg_url, "cards", str(batch_id))
    kill_when(child, lambda: 0 < generated() <= 50_000)

    # Part of the batch is stored, but nothing of it exists for anybody.
    part = generated()
    assert 0 < part < 100_000
    pg_db.rollback()
    stored = pg_db.scalar(select(func.count()).where(TopupCard.batch_id == batch_id))
    assert stored == part  # whole committed chunks only, no half chunk
    visible = select(func.count()).select_from(TopupCard).where(topup_cards.visible_condition())
    assert pg_db.scalar(visible) == 0
    assert pg_db.get(TopupCardBatch, batch_id).status == BatchStatus.RUNNING
    with pg_app.app_context():
        session = portal_db.new_session()
        operator = session.scalar(select(User).where(User.email == "op@kill.test"))
        page = topup_cards.search_cards(session, actor=operator, filters=topup_cards.CardFilters())
        assert page.total == 0 and page.rows == []
        # A PIN of the unfinished batch cannot be redeemed either.
        card = session.scalar(select(TopupCard).where(TopupCard.batch_id == batch_id).limit(1))
        pin = vault().decrypt(card.pin_encrypted)
        with pytest.raises(DomainError):
            vouchers.redeem_voucher(
                session,
                user=session.get(User, customer.id),
                account=session.get(Account, customer.account_id),
                pin=pin,
                client_ip="10.9.9.9",
            )
        session.close()

    finish(run_child(pg_url, "cards", str(batch_id)))  # the rerun (what "Resume" does)

    pg_db.rollback()
    pg_db.expire_all()
    batch = pg_db.get(TopupCardBatch, batch_id)
    assert (batch.status, batch.generated) == (BatchStatus.DONE, 100_000)
    count, serials, pins = pg_db.execute(
        select(
            func.count(),
            func.count(func.distinct(TopupCard.serial)),
            func.count(func.distinct(TopupCard.pin_hash)),
        ).where(TopupCard.batch_id == batch_id)
    ).one()
    assert count == serials == pins == 100_000
    assert pg_db.scalar(visible) == 100_000
    assert pg_db.get(Account, customer.account_id).balance_minor == 0


# --- A billing-cycle run -----------------------------------------------------------------


def test_killed_billing_cycle_leaves_no_half_invoice_and_a_rerun_bills_each_once(
    pg_app, pg_db, pg_url
):
    resellers = [make_reseller(pg_db) for _ in range(2)]
    plan = Plan(name="Office", price_minor=4500, currency="GBP")
    pg_db.add(plan)
    pg_db.flush()
    total = 600
    for n in range(total):
        account = Account(
            reseller_id=resellers[n % 2].id,
            number=f"77{n:05d}",
            name=f"Cycle {n}",
            email=f"cycle{n}@example.test",
            currency="GBP",
            billing_model=BillingModel.PREPAID,
        )
        pg_db.add(account)
        pg_db.flush()
        pg_db.add(
            Subscription(
                account_id=account.id, plan_id=plan.id, anchor_day=15, started_on=date(2030, 3, 15)
            )
        )
    pg_db.commit()

    def made() -> int:
        pg_db.rollback()
        return pg_db.scalar(select(func.count()).select_from(Invoice))

    child = run_child(pg_url, "invoices", MARCH_16.isoformat())
    kill_when(child, lambda: 0 < made() < total // 2)

    # Every invoice that exists is whole: lines, total, fee debited, email queued.
    part = made()
    assert 0 < part < total
    _assert_invoices_whole(pg_db)
    fees = select(func.count()).where(LedgerEntry.kind == EntryKind.PLAN_FEE)
    assert pg_db.scalar(fees) == part  # no fee without its invoice

    finish(run_child(pg_url, "invoices", MARCH_16.isoformat()))
    finish(run_child(pg_url, "invoices", MARCH_16.isoformat()))  # and once more: nothing

    assert made() == total
    _assert_invoices_whole(pg_db)
    assert pg_db.scalar(fees) == total
    per_account = select(Invoice.account_id).group_by(Invoice.account_id).having(func.count() > 1)
    assert pg_db.scalars(per_account).all() == []
    for reseller in resellers:  # gap-free numbering survived the kill
        numbers = pg_db.scalars(
            select(Invoice.number)
            .where(Invoice.reseller_id == reseller.id)
            .order_by(Invoice.number)
        ).all()
        assert numbers == list(range(1, len(numbers) + 1))
    assert pg_db.scalar(select(func.count()).select_from(Reseller)) == 2
    assert audit_balances(pg_db) == []


def _assert_invoices_whole(db) -> None:
    db.rollback()
    db.expire_all()
    for invoice in db.scalars(select(Invoice)):
        lines = db.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)).all()
        assert lines and sum(line.amount_minor for line in lines) == invoice.total_minor
        paid = db.scalar(
            select(func.coalesce(func.sum(PaymentAllocation.amount_minor), 0)).where(
                PaymentAllocation.invoice_id == invoice.id
            )
        )
        assert paid == invoice.paid_minor == invoice.total_minor  # prepaid: paid by balance
        assert invoice.sent_at is not None
        subject = f"Invoice {invoices.invoice_number(invoice)}: £45.00"
        emails = select(func.count()).where(
            OutboxEmail.account_id == invoice.account_id, OutboxEmail.subject == subject
        )
        assert db.scalar(emails) == 1
