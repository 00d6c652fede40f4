"""Rounding edges of proration and included tax (issue 16: found by mutation testing)."""

from datetime import UTC, date

import pytest
from sqlalchemy import select

from portal import invoices, plans
from portal.models import BillingModel, EntryKind, LedgerEntry, Subscription
from tests.invoices.test_billing_model import at, customer, make_plan


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (7, 2, 4),  # 3.5: the odd quotient rounds up to even
        (9, 2, 4),  # 4.5: the even quotient stays
        (5, 2, 2),  # 2.5 -> 2
        (-7, 2, -4),  # -3.5 -> -4
        (17, 1, 17),  # a denominator of one is fine
        (2, 3, 1),
        (1, 3, 0),
    ],
)
def test_divide_half_even(numerator, denominator, expected):
    assert plans.divide_half_even(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -3])
def test_divide_half_even_refuses_non_positive_denominators(denominator):
    with pytest.raises(ValueError, match=r"^denominator must be positive$"):
        plans.divide_half_even(10, denominator)


@pytest.mark.parametrize(
    ("total", "rate_bp", "tax"),
    [
        (1_000_000, 2000, 166667),  # 166,666.67 of a 20 % tax-inclusive total
        (1_000_000, 500, 47619),  # 47,619.05 at 5 %
        (6, 2000, 1),  # exactly 1
        (3, 2000, 0),  # 0.5 rounds half-even to 0
        (9, 2000, 2),  # 1.5 rounds half-even to 2
    ],
)
def test_included_tax_rounds_half_even(total, rate_bp, tax):
    assert invoices.included_tax(total, rate_bp) == tax


# --- Plan fees in advance (plans.period_fee_minor, charge_period_fee, charge_fees_due) ---------

NOV = plans.BillingPeriod(date(2026, 11, 14), date(2026, 12, 14))


@pytest.mark.parametrize(
    ("started", "fee"),
    [
        (date(2026, 10, 1), 2500),  # subscribed before the period: the whole month
        (date(2026, 11, 14), 2500),  # from its first day: the whole month too
        (date(2026, 11, 29), 1250),  # 15 of 30 days
        (date(2026, 12, 13), 83),  # the last day: 2500 / 30, half-even
        (date(2026, 12, 14), 0),  # starts with the next period
        (date(2027, 1, 5), 0),
    ],
)
def test_a_periods_fee_is_the_price_prorated_from_the_start(started, fee):
    subscription = Subscription(started_on=started, anchor_day=14)
    assert plans.period_fee_minor(subscription, 2500, NOV) == fee


def fees(db, account) -> list[LedgerEntry]:
    return list(
        db.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.PLAN_FEE)
            .order_by(LedgerEntry.id)
        )
    )


def test_the_fee_entry_says_which_plan_and_days_it_pays_and_is_taken_once(db):
    account = customer(db, make_plan(db, "Professional", 2500), model=BillingModel.PREPAID)
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    when = at(date(2026, 11, 14), 1)
    entry = plans.charge_period_fee(
        db, account=account, subscription=subscription, period=NOV, at=when
    )
    again = plans.charge_period_fee(
        db, account=account, subscription=subscription, period=NOV, at=at(date(2026, 11, 20))
    )
    db.commit()
    assert again.id == entry.id and fees(db, account) == [entry]
    assert (entry.kind, entry.amount_minor, entry.created_at.replace(tzinfo=UTC)) == (
        EntryKind.PLAN_FEE,
        -2500,
        when,
    )
    assert entry.description == "Professional plan, 14 Nov 2026 to 13 Dec 2026 (in advance)"
    assert (entry.idempotency_key, entry.reference) == ("plan-fee:2026-11-14", "period 2026-11-14")
    assert plans.fee_key(NOV) == "plan-fee:2026-11-14"


def test_no_fee_for_a_period_that_ends_when_the_subscription_starts(db):
    account = customer(
        db, make_plan(db, "Professional", 2500), model=BillingModel.PREPAID, started=NOV.end
    )
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    assert (
        plans.charge_period_fee(db, account=account, subscription=subscription, period=NOV) is None
    )
    assert fees(db, account) == []


def test_missed_fees_are_taken_oldest_first_at_the_given_moment(db):
    account = customer(
        db,
        make_plan(db, "Professional", 2500),
        model=BillingModel.PREPAID,
        started=date(2026, 9, 20),
    )
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    when = at(date(2026, 11, 20))
    plans.charge_fees_due(
        db, account=account, subscription=subscription, today=date(2026, 11, 20), at=when
    )
    db.commit()
    taken = fees(db, account)
    assert [(e.reference, e.amount_minor) for e in taken] == [
        ("period 2026-09-14", -2000),  # 24 of 30 days
        ("period 2026-10-14", -2500),
        ("period 2026-11-14", -2500),
    ]
    assert {e.created_at.replace(tzinfo=UTC) for e in taken} == {when}


def test_after_a_long_outage_at_most_max_catch_up_fees_are_taken_the_newest(db):
    account = customer(
        db,
        make_plan(db, "Professional", 2500),
        model=BillingModel.PREPAID,
        started=date(2024, 1, 14),
    )
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    today = date(2026, 11, 20)
    plans.charge_fees_due(db, account=account, subscription=subscription, today=today)
    db.commit()
    taken = [e.reference for e in fees(db, account)]
    assert plans.MAX_CATCH_UP == 24
    assert len(taken) == 24
    assert (taken[0], taken[-1]) == ("period 2024-12-14", "period 2026-11-14")


def test_the_walk_back_stops_at_the_first_period_whose_fee_was_taken(db):
    account = customer(
        db,
        make_plan(db, "Professional", 2500),
        model=BillingModel.PREPAID,
        started=date(2026, 9, 14),
    )
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    plans.charge_period_fee(db, account=account, subscription=subscription, period=NOV)
    plans.charge_fees_due(db, account=account, subscription=subscription, today=date(2026, 11, 20))
    db.commit()
    assert [e.reference for e in fees(db, account)] == ["period 2026-11-14"]
