"""Real parallel workers on PostgreSQL: one PIN credits once; crossing transfers never deadlock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from portal import ledger, transfers, vouchers
from portal.domain import DomainError
from portal.models import (
    Account,
    CardStatus,
    EntryKind,
    LedgerEntry,
    TopupCard,
    TransferSetting,
    User,
)
from tests.billing.plan_helpers import fund, make_card
from tests.builders import make_account, make_reseller, make_user

pytestmark = pytest.mark.postgres


def test_twenty_concurrent_redemptions_of_one_pin_credit_once(pg_app, pg_db):
    reseller = make_reseller(pg_db)
    account = make_account(pg_db, reseller=reseller)
    users = [make_user(pg_db, account=account) for _ in range(4)]
    card = make_card(pg_db, reseller_id=reseller.id, pin="5550001111", amount_minor=2000)
    pg_db.commit()
    factory = pg_app.extensions["session_factory"]
    start = threading.Barrier(20)

    def worker(n: int) -> str:
        with pg_app.app_context(), factory() as session:
            user = session.get(User, users[n % 4].id)
            mine = session.get(Account, account.id)
            start.wait()
            try:
                vouchers.redeem_voucher(
                    session, user=user, account=mine, pin="5550001111", client_ip=f"10.1.0.{n}"
                )
                return "credited"
            except DomainError as exc:
                return type(exc).__name__

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(worker, range(20)))
    assert outcomes.count("credited") == 1
    assert set(outcomes) <= {"credited", "VoucherRejected", "RedeemLocked"}
    pg_db.expire_all()
    assert pg_db.get(Account, account.id).balance_minor == 2000
    entries = pg_db.scalar(
        select(func.count(LedgerEntry.id)).where(LedgerEntry.kind == EntryKind.VOUCHER)
    )
    assert entries == 1
    redeemed = pg_db.get(TopupCard, card.id)
    assert redeemed.status == CardStatus.ACTIVATED and redeemed.activated_account_id == account.id
    assert ledger.audit_balances(pg_db) == []


def test_two_hundred_crossing_transfers_finish_and_conserve_the_total(pg_app, pg_db):
    reseller = make_reseller(pg_db)
    a = make_account(pg_db, reseller=reseller, transfers=TransferSetting.YES)
    b = make_account(pg_db, reseller=reseller, transfers=TransferSetting.YES)
    fund(pg_db, a, 100_000, key="a")
    fund(pg_db, b, 100_000, key="b")
    pg_db.commit()
    factory = pg_app.extensions["session_factory"]
    pairs = [(a, b), (b, a)]
    start = threading.Barrier(8)

    def worker(thread: int) -> int:
        start.wait()
        done = 0
        for n in range(25):  # 8 threads x 25 = 200 transfers, half in each direction
            sender, recipient = pairs[(thread + n) % 2]
            with factory() as session:
                transfers.transfer_funds(
                    session,
                    sender_account=session.get(Account, sender.id),
                    recipient_number=recipient.number,
                    amount_minor=1 + (n % 7),
                    actor_user_id=None,
                    idempotency_key=f"t{thread}-{n}",
                )
            done += 1
        return done

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(worker, range(8))) == 200  # any deadlock would have raised
    pg_db.expire_all()
    total = pg_db.get(Account, a.id).balance_minor + pg_db.get(Account, b.id).balance_minor
    assert total == 200_000
    moves = pg_db.scalar(
        select(func.count(LedgerEntry.id)).where(
            LedgerEntry.kind.in_([EntryKind.TRANSFER_IN, EntryKind.TRANSFER_OUT])
        )
    )
    assert moves == 400
    assert ledger.audit_balances(pg_db) == []
