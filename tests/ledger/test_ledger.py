import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal import ledger
from portal.models import Account, BillingModel, EntryKind, LedgerEntry
from tests.builders import make_account, make_reseller


def _sum(db, account_id):
    return db.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
            LedgerEntry.account_id == account_id
        )
    )


def test_post_entry_updates_balance_and_records_balance_after(db):
    account = make_account(db, reseller=make_reseller(db))
    first = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=2000,
        description="Top-up",
        idempotency_key="k1",
    )
    second = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE,
        amount_minor=-750,
        description="Calls",
        idempotency_key="k2",
    )
    db.commit()
    assert (first.entry.balance_after_minor, second.entry.balance_after_minor) == (2000, 1250)
    assert db.get(Account, account.id).balance_minor == 1250 == _sum(db, account.id)


def test_replayed_key_returns_first_entry_and_moves_money_once(db):
    account = make_account(db, reseller=make_reseller(db))
    first = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=500,
        description="Top-up",
        idempotency_key="same",
    )
    again = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=999,
        description="Top-up",
        idempotency_key="same",
    )
    db.commit()
    assert again.replayed and not first.replayed
    assert again.entry.id == first.entry.id
    assert db.get(Account, account.id).balance_minor == 500
    assert db.scalar(select(func.count(LedgerEntry.id))) == 1


def test_same_key_on_another_account_is_independent(db):
    reseller = make_reseller(db)
    a, b = make_account(db, reseller=reseller), make_account(db, reseller=reseller)
    for account in (a, b):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=100,
            description="x",
            idempotency_key="shared",
        )
    db.commit()
    assert (db.get(Account, a.id).balance_minor, db.get(Account, b.id).balance_minor) == (100, 100)


def test_require_funds_refuses_overdraft_and_changes_nothing(db):
    account = make_account(db, reseller=make_reseller(db))
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=100,
        description="x",
        idempotency_key="a",
    )
    with pytest.raises(ledger.InsufficientFunds):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.USAGE,
            amount_minor=-101,
            description="x",
            idempotency_key="b",
            require_funds=True,
        )
    db.commit()
    assert db.get(Account, account.id).balance_minor == 100
    assert ledger.find_entry(db, account.id, "b") is None


def test_postpaid_available_funds_include_credit_limit(db):
    account = make_account(
        db, reseller=make_reseller(db), model=BillingModel.POSTPAID, credit_limit_minor=5000
    )
    posting = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE,
        amount_minor=-5000,
        description="x",
        idempotency_key="a",
        require_funds=True,
    )
    assert posting.entry.balance_after_minor == -5000
    with pytest.raises(ledger.InsufficientFunds):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.USAGE,
            amount_minor=-1,
            description="x",
            idempotency_key="b",
            require_funds=True,
        )


def test_currency_mismatch_is_refused(db):
    account = make_account(db, reseller=make_reseller(db))
    with pytest.raises(ledger.CurrencyMismatch):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=1,
            description="x",
            idempotency_key="a",
            currency="USD",
        )


def test_float_amounts_are_rejected(db):
    account = make_account(db, reseller=make_reseller(db))
    with pytest.raises(TypeError):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=1.5,
            description="x",
            idempotency_key="a",
        )


operations = st.lists(
    st.tuples(
        st.integers(min_value=-50_000, max_value=50_000), st.integers(min_value=0, max_value=15)
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_any_sequence_keeps_cached_balance_equal_to_sum(db, ops):
    account = make_account(db, reseller=make_reseller(db))
    expected, seen = 0, set()
    for amount, key in ops:
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.ADJUSTMENT,
            amount_minor=amount,
            description="prop",
            idempotency_key=f"k{key}",
        )
        if key not in seen:
            seen.add(key)
            expected += amount
    db.commit()
    assert db.get(Account, account.id).balance_minor == expected == _sum(db, account.id)
    assert ledger.audit_balances(db) == []


def test_audit_finds_a_tampered_balance_and_cli_exits_nonzero(app, db):
    account = make_account(db, reseller=make_reseller(db))
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=100,
        description="x",
        idempotency_key="a",
    )
    db.commit()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["audit-ledger"]).exit_code == 0
    db.get(Account, account.id).balance_minor = 101
    db.commit()
    assert ledger.audit_balances(db) == [(account.id, 101, 100)]
    result = runner.invoke(args=["audit-ledger"])
    assert result.exit_code == 1
    assert "MISMATCH" in result.output
