"""ledger.debit_usage: the switch's one-statement debit, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal import ledger
from portal.models import (
    Account,
    AccountStatus,
    AutoRechargeSetting,
    BillingModel,
    EntryKind,
    LedgerEntry,
    utcnow,
)
from tests.builders import make_account, make_customer_class, make_reseller


@pytest.fixture(params=["sqlite", "postgres"])
def anydb(request):
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")


def funded(db, amount=1000, **fields):
    account = make_account(db, reseller=make_reseller(db), **fields)
    if amount:
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=amount,
            description="Opening",
            idempotency_key="open",
        )
    db.commit()
    return account


def debit(db, account, amount, key="u1", **kw):
    result = ledger.debit_usage(
        db,
        account_id=account.id,
        amount_minor=amount,
        description=kw.pop("description", "Call"),
        idempotency_key=key,
        **kw,
    )
    db.commit()
    return result


def balance_and_sum(db, account_id):
    db.rollback()
    total = db.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
            LedgerEntry.account_id == account_id
        )
    )
    return db.get(Account, account_id, populate_existing=True).balance_minor, total


def test_debit_writes_one_immutable_entry_and_the_balance(anydb):
    account = funded(anydb)
    created = anydb.get(Account, account.id).created_at
    at = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    result = debit(anydb, account, 250, description="Call to +44", at=at)
    entry = anydb.get(LedgerEntry, result.entry_id)
    assert (entry.kind, entry.amount_minor, entry.balance_after_minor) == (
        EntryKind.USAGE,
        -250,
        750,
    )
    assert (entry.currency, entry.description, entry.idempotency_key) == (
        "GBP",
        "Call to +44",
        "u1",
    )
    assert entry.reference == "" and entry.actor_user_id is None and entry.created_at == at
    assert result.funds.id == account.id
    assert (result.funds.balance_minor, result.funds.currency) == (750, "GBP")
    assert balance_and_sum(anydb, account.id) == (750, 750)
    # Only the balance changes on the account row.
    assert anydb.get(Account, account.id).created_at == created != at


def test_exactly_the_available_funds_is_debited_one_more_is_refused(anydb):
    account = funded(anydb)
    assert debit(anydb, account, 1000).funds.balance_minor == 0
    assert debit(anydb, account, 1, key="u2") is None
    assert balance_and_sum(anydb, account.id) == (0, 0)
    assert anydb.scalar(select(func.count()).select_from(LedgerEntry)) == 2


def test_a_zero_charge_is_recorded_and_a_negative_or_odd_amount_refused(anydb):
    account = funded(anydb)
    assert debit(anydb, account, 0).funds.balance_minor == 1000
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="^amount_minor must be a non-negative int$"):
            ledger.debit_usage(
                anydb, account_id=account.id, amount_minor=bad, description="x", idempotency_key="b"
            )
    assert balance_and_sum(anydb, account.id) == (1000, 1000)


def test_inactive_account_is_refused_without_writing(anydb):
    account = funded(anydb)
    anydb.get(Account, account.id).status = AccountStatus.SUSPENDED
    anydb.commit()
    assert debit(anydb, account, 1) is None
    assert balance_and_sum(anydb, account.id) == (1000, 1000)


def test_a_used_key_raises_and_moves_no_money(anydb):
    account = funded(anydb)
    debit(anydb, account, 100)
    with pytest.raises(IntegrityError):
        ledger.debit_usage(
            anydb, account_id=account.id, amount_minor=100, description="x", idempotency_key="u1"
        )
    anydb.rollback()
    assert balance_and_sum(anydb, account.id) == (900, 900)


def test_description_is_cut_at_300(anydb):
    account = funded(anydb)
    result = debit(anydb, account, 1, description="d" * 400)
    assert anydb.get(LedgerEntry, result.entry_id).description == "d" * 300


@pytest.mark.parametrize(
    ("fields", "available"),
    [
        ({"credit_limit_minor": 500}, 500),
        ({"credit_limit_minor": 500, "temp_increase_minor": 300, "valid": 1}, 800),
        ({"credit_limit_minor": 500, "temp_increase_minor": 300, "valid": -1}, 500),
        ({"credit_limit_minor": 500, "temp_increase_percent": 50, "valid": 1}, 750),
        ({"credit_limit_minor": 500, "temp_increase_percent": 50, "valid": -1}, 500),
        ({"credit_limit_minor": 500, "temp_increase_percent": 50, "valid": None}, 500),
        ({"credit_limit_minor": 333, "temp_increase_percent": 50, "valid": 1}, 499),
        ({"credit_limit_minor": -200, "temp_increase_percent": 50, "valid": 1}, -200),
        ({"credit_limit_minor": 0, "temp_increase_minor": None, "valid": 1}, 0),
    ],
)
def test_postpaid_funds_check_matches_effective_credit_limit(anydb, fields, available):
    fields = dict(fields)
    valid = fields.pop("valid", None)
    if valid is not None:
        fields["temp_increase_valid_until"] = utcnow() + timedelta(hours=valid)
    account = funded(anydb, amount=0, model=BillingModel.POSTPAID, **fields)
    loaded = anydb.get(Account, account.id)
    assert ledger.available_funds(loaded) == available  # the Python rule agrees
    if available > 0:
        assert debit(anydb, account, available + 1) is None
        result = debit(anydb, account, available, key="u2")
        assert result.funds.balance_minor == -available
        assert ledger.available_funds(result.funds) == 0
    else:
        assert debit(anydb, account, 1) is None
    assert balance_and_sum(anydb, account.id)[0] == balance_and_sum(anydb, account.id)[1]


def test_prepaid_ignores_a_credit_limit(anydb):
    account = funded(anydb, amount=100, credit_limit_minor=5000)
    assert debit(anydb, account, 101) is None
    assert debit(anydb, account, 100, key="u2").funds.balance_minor == 0


def test_snapshot_carries_thresholds_and_a_due_recharge_threshold(anydb):
    reseller = make_reseller(anydb)
    klass = make_customer_class(anydb, reseller=reseller, default_warning_thresholds="5.00")
    account = make_account(anydb, reseller=reseller, customer_class_id=klass.id)
    own = make_account(anydb, reseller=reseller, warning_thresholds="2.00", warnings_fired="2.00")
    anydb.add(
        AutoRechargeSetting(account_id=own.id, enabled=True, threshold_minor=300, amount_minor=1000)
    )
    anydb.commit()
    funds = debit(anydb, account, 0).funds
    assert (funds.warning_thresholds, funds.warnings_fired, funds.recharge_threshold_minor) == (
        "5.00",
        "",
        None,
    )
    funds = debit(anydb, own, 0).funds
    assert (funds.warning_thresholds, funds.warnings_fired) == ("2.00", "2.00")
    assert funds.recharge_threshold_minor == 300
    assert funds.billing_model == BillingModel.PREPAID


@pytest.mark.parametrize(
    ("enabled", "amount", "next_in_minutes", "expected"),
    [
        (True, 1000, None, 300),
        (False, 1000, None, None),
        (True, 0, None, None),
        (True, 1000, 5, None),
        (True, 1000, -5, 300),
    ],
)
def test_recharge_threshold_only_when_a_recharge_could_start(
    anydb, enabled, amount, next_in_minutes, expected
):
    account = funded(anydb, amount=0)
    next_at = None if next_in_minutes is None else utcnow() + timedelta(minutes=next_in_minutes)
    anydb.add(
        AutoRechargeSetting(
            account_id=account.id,
            enabled=enabled,
            threshold_minor=300,
            amount_minor=amount,
            next_attempt_at=next_at,
        )
    )
    anydb.commit()
    assert debit(anydb, account, 0).funds.recharge_threshold_minor == expected
