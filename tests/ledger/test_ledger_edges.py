"""Edges of the ledger that mutation testing found unguarded (issue 16, tests/mutation.md).

Boundaries of a posting (zero amounts, the exact limit), what an entry records, the
refusals' messages and figures, the audit of an account without entries, and credit limits
with a temporary increase (amount or percentage, rounded down to a whole minor unit).
"""

from datetime import timedelta

import pytest

from portal import credit, ledger
from portal.models import Account, BillingModel, EntryKind, LedgerEntry, utcnow
from tests.builders import make_account, make_customer_class, make_reseller, make_user


def post(db, account, amount, key, **kwargs):
    return ledger.post_entry(
        db,
        account_id=account.id,
        kind=kwargs.pop("kind", EntryKind.ADJUSTMENT),
        amount_minor=amount,
        description=kwargs.pop("description", "test"),
        idempotency_key=key,
        **kwargs,
    )


# --- posting ---------------------------------------------------------------------------


def test_a_posting_records_who_and_is_not_a_replay(db):
    account = make_account(db, reseller=make_reseller(db))
    user = make_user(db)
    posting = post(db, account, 100, "k", actor_user_id=user.id)
    db.commit()
    db.expire_all()
    assert posting.replayed is False
    entry = db.get(LedgerEntry, posting.entry.id)
    assert entry.actor_user_id == user.id
    assert entry.reference == ""  # no reference given: empty, not a placeholder
    assert entry.currency == "GBP"


def test_description_and_reference_are_cut_to_their_column_lengths(db):
    account = make_account(db, reseller=make_reseller(db))
    posting = post(db, account, 1, "k", description="d" * 400, reference="r" * 200)
    db.commit()
    db.expire_all()
    entry = db.get(LedgerEntry, posting.entry.id)
    assert (len(entry.description), len(entry.reference)) == (300, 120)


def test_a_zero_amount_needs_no_funds_even_when_overdrawn(db):
    """require_funds checks debits only: a zero posting on an overdrawn account goes through."""
    account = make_account(db, reseller=make_reseller(db))
    post(db, account, -500, "overdraw")  # an adjustment without require_funds
    posting = post(db, account, 0, "zero", require_funds=True)
    assert posting.entry.balance_after_minor == -500
    assert db.get(Account, account.id).balance_minor == -500


def test_a_debit_of_exactly_the_available_funds_is_allowed(db):
    account = make_account(db, reseller=make_reseller(db))
    post(db, account, 300, "in")
    assert post(db, account, -300, "out", require_funds=True).entry.balance_after_minor == 0


def test_insufficient_funds_says_what_was_available_and_needed(db):
    account = make_account(db, reseller=make_reseller(db))
    post(db, account, 100, "in")
    with pytest.raises(ledger.InsufficientFunds) as refused:
        post(db, account, -250, "out", require_funds=True)
    assert (refused.value.available_minor, refused.value.needed_minor) == (100, 250)
    assert str(refused.value) == "Available funds do not cover this amount."


def test_refusals_explain_themselves(db):
    account = make_account(db, reseller=make_reseller(db))
    with pytest.raises(TypeError, match=r"^amount_minor must be an int$"):
        post(db, account, True, "bool")
    with pytest.raises(ledger.CurrencyMismatch, match=r"^The account is in GBP, not EUR\.$"):
        post(db, account, 1, "eur", currency="EUR")


# --- audit -----------------------------------------------------------------------------


def test_audit_finds_a_balance_on_an_account_without_entries(db):
    reseller = make_reseller(db)
    empty, clean = make_account(db, reseller=reseller), make_account(db, reseller=reseller)
    post(db, clean, 700, "k")
    db.commit()
    assert ledger.audit_balances(db) == []
    empty.balance_minor = 5
    db.commit()
    assert ledger.audit_balances(db) == [(empty.id, 5, 0)]


# --- credit limits and temporary increases -----------------------------------------------


def postpaid(db, limit, **fields):
    return make_account(
        db,
        reseller=make_reseller(db),
        model=BillingModel.POSTPAID,
        credit_limit_minor=limit,
        **fields,
    )


def test_a_temporary_amount_adds_to_the_limit_until_the_exact_expiry(db):
    now = utcnow()
    account = postpaid(db, 10000, temp_increase_minor=2500, temp_increase_valid_until=now)
    assert ledger.effective_credit_limit(account, now - timedelta(seconds=1)) == 12500
    assert ledger.effective_credit_limit(account, now) == 10000  # expired at that instant
    assert ledger.available_funds(account, now - timedelta(seconds=1)) == 12500
    assert ledger.available_funds(account, now) == 10000


def test_available_funds_use_the_moment_given(db):
    """A past moment counts an increase that has expired since (and the default is now)."""
    yesterday = utcnow() - timedelta(days=1)
    account = postpaid(db, 100, temp_increase_minor=50, temp_increase_valid_until=yesterday)
    assert ledger.available_funds(account, yesterday - timedelta(hours=1)) == 150
    assert ledger.available_funds(account) == 100
    assert ledger.effective_credit_limit(account) == 100


def test_prepaid_accounts_have_no_credit_limit(db):
    account = make_account(
        db,
        reseller=make_reseller(db),
        credit_limit_minor=900,
        temp_increase_minor=100,
        temp_increase_valid_until=utcnow() + timedelta(days=1),
    )
    assert ledger.effective_credit_limit(account) == 0


@pytest.mark.parametrize(
    ("limit", "percent", "increase"),
    [
        (999, 15, 149),  # 149.85 rounds down to a whole minor unit
        (20000, 25, 5000),
        (1, 99, 0),  # 0.99 of a penny is no penny
        (-500, 100, 0),  # a negative limit gives no percentage increase
    ],
)
def test_a_percentage_increase_is_rounded_down_to_whole_minor_units(db, limit, percent, increase):
    account = postpaid(
        db,
        limit,
        temp_increase_percent=percent,
        temp_increase_valid_until=utcnow() + timedelta(days=1),
    )
    got = ledger.temporary_increase_minor(account)
    assert got == increase and type(got) is int
    limit_now = ledger.effective_credit_limit(account)
    assert limit_now == limit + increase and type(limit_now) is int


@pytest.mark.parametrize(("amount", "increase"), [(None, 0), (250, 250)])
def test_an_amount_increase_or_none(db, amount, increase):
    account = postpaid(db, 1000, temp_increase_minor=amount)
    assert ledger.temporary_increase_minor(account) == increase


def test_setting_a_percentage_increase_rounds_down_in_the_credit_rules_too(db):
    """credit.py computes the same share for the class's cap and the increase itself."""
    reseller = make_reseller(db)
    klass = make_customer_class(
        db, reseller=reseller, max_increase_percent=15, max_increase_days=30
    )
    admin = make_user(db, reseller=reseller)
    account = make_account(
        db,
        reseller=reseller,
        model=BillingModel.POSTPAID,
        credit_limit_minor=999,
        customer_class_id=klass.id,
    )
    db.commit()
    cap = credit.maximum_increase(account).limit_minor
    assert cap == 149 and type(cap) is int
    # 15 % of 999 is 149.85: the increase is 149, within the cap of 149.
    credit.set_temporary_increase(
        db, account=account, percent=15, valid_until=utcnow() + timedelta(days=1), actor=admin
    )
    db.refresh(account)
    assert ledger.available_funds(account) == 999 + 149
