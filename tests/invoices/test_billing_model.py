"""The billing model end to end: plan fees in advance, plan changes, the invoices that follow.

The three worked examples of BILLING.md with their exact figures, and the invariant of its
rule 5 as a property test over random plan changes, add-ons and usage across periods, on
SQLite and PostgreSQL: the plan money of every period equals what its days were worth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal import invoices, ledger, plans
from portal.invoices import allocate_payment
from portal.models import (
    Account,
    AddOn,
    BillingModel,
    EntryKind,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    OutboxEmail,
    Plan,
    ReserveGrant,
    Subscription,
)
from tests.builders import make_account, make_reseller


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def make_plan(db, name: str, price_minor: int) -> Plan:
    plan = Plan(name=name, price_minor=price_minor, currency="GBP")
    db.add(plan)
    db.flush()
    return plan


def customer(db, plan, *, model, anchor_day=14, started=date(2026, 11, 14), reseller=None):
    account = make_account(
        db,
        reseller=reseller or make_reseller(db),
        model=model,
        credit_limit_minor=10_000_000 if model == BillingModel.POSTPAID else 0,
        email="customer@example.test",
    )
    db.add(
        Subscription(
            account_id=account.id, plan_id=plan.id, anchor_day=anchor_day, started_on=started
        )
    )
    if model == BillingModel.PREPAID:
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=10_000_000,
            description="Opening top-up",
            idempotency_key="opening",
            at=at(started - timedelta(days=1)),
        )
    db.commit()
    return account


def generate(db, account, when: datetime) -> list[Invoice]:
    return invoices.generate_for_account(db, account_id=account.id, now=when)


def change(db, account, plan, when: datetime, key: str):
    return plans.change_plan(
        db, account=account, plan_id=plan.id, actor_user_id=None, idempotency_key=key, now=when
    )


def usage(db, account, amount_minor: int, when: datetime, key: str) -> None:
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE,
        amount_minor=-amount_minor,
        description="Calls",
        idempotency_key=key,
        at=when,
    )
    db.commit()


def lines(invoice: Invoice) -> list[tuple[str, int]]:
    return sorted((line.kind, line.amount_minor) for line in invoice.lines)


def entry(db, account, key: str) -> LedgerEntry:
    return ledger.find_entry(db, account.id, key)


# --- BILLING.md, example 1: upgrade (SPEC 11's numbers) --------------------------------------


def test_spec11_upgrade_costs_the_period_33_pounds_and_is_billed_once(db, catalogue):
    account = customer(db, catalogue["Professional"], model=BillingModel.PREPAID)
    (inv1,) = generate(db, account, at(date(2026, 11, 14), 1))
    assert lines(inv1) == [("plan_fee", 2500)]

    preview = plans.preview_plan_change(
        db, account=account, plan_id=catalogue["Complete"].id, today=date(2026, 12, 2)
    )
    assert (preview.days_left, preview.days_in_period, preview.charge_minor) == (12, 30, 800)
    change(db, account, catalogue["Complete"], at(date(2026, 12, 2)), "up")
    assert entry(db, account, "up").amount_minor == -800  # what the preview showed

    (inv2,) = generate(db, account, at(date(2026, 12, 14), 1))
    assert lines(inv2) == [("plan_change", 800), ("plan_fee", 4500)]
    assert inv2.total_minor == 5300 and inv2.status == InvoiceStatus.PAID
    # The period 14 Nov - 13 Dec cost £25 + £8 = £33 = 18 x 25/30 + 12 x 45/30; never £53.
    period_money = -entry(db, account, "plan-fee:2026-11-14").amount_minor + 800
    assert period_money == 3300
    db.expire_all()
    assert db.get(Account, account.id).balance_minor == 10_000_000 - 2500 - 800 - 4500


# --- Example 2: downgrade ---------------------------------------------------------------------


def test_downgrade_leaves_reserve_credit_for_time_that_was_paid(db, catalogue):
    account = customer(db, catalogue["Complete"], model=BillingModel.PREPAID)
    generate(db, account, at(date(2026, 11, 14), 1))
    result = change(db, account, catalogue["Professional"], at(date(2026, 12, 2)), "down")
    grant = db.scalar(select(ReserveGrant).where(ReserveGrant.account_id == account.id))
    assert result.preview.reserve_minor == grant.amount_minor == 800
    assert grant.expires_at == at(date(2027, 1, 2))
    assert entry(db, account, "down") is None  # no cash moves on a downgrade

    (inv2,) = generate(db, account, at(date(2026, 12, 14), 1))
    assert lines(inv2) == [("plan_fee", 2500)]  # the grant is not an invoice line
    # The period cost £45 - £8 reserve = £37 = 18 x 45/30 + 12 x 25/30.
    assert -entry(db, account, "plan-fee:2026-11-14").amount_minor - grant.amount_minor == 3700


# --- Example 3: postpaid -------------------------------------------------------------------------


def test_postpaid_bob_pays_the_first_invoice_and_the_second_goes_overdue(app, db, catalogue):
    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    usage(db, bob, 1240, at(date(2026, 10, 20)), "october")
    (inv1,) = generate(db, bob, at(date(2026, 11, 14), 1))
    assert lines(inv1) == [("plan_fee", 2500), ("usage", 1240)]
    assert (inv1.total_minor, inv1.due_on, inv1.status) == (3740, date(2026, 11, 28), "open")

    # 20 Nov: Bob pays INV-1 by card (the payment's credit, then its allocation).
    locked = ledger.lock_account(db, bob.id)
    ledger.post_entry(
        db,
        account_id=bob.id,
        account=locked,
        kind=EntryKind.PAYMENT,
        amount_minor=3740,
        description="Card payment",
        idempotency_key="pay-1",
        at=at(date(2026, 11, 20)),
    )
    allocate_payment(db, account=locked, amount_minor=3740, source="Card payment")
    db.commit()
    db.refresh(inv1)
    assert inv1.status == InvoiceStatus.PAID

    usage(db, bob, 1820, at(date(2026, 11, 25)), "november")
    change(db, bob, catalogue["Complete"], at(date(2026, 12, 2)), "up")
    (inv2,) = generate(db, bob, at(date(2026, 12, 14), 1))
    assert lines(inv2) == [("plan_change", 800), ("plan_fee", 4500), ("usage", 1820)]
    assert (inv2.total_minor, inv2.due_on) == (7120, date(2026, 12, 28))
    db.expire_all()
    assert db.get(Account, bob.id).balance_minor == -(2500 + 1240 - 3740 + 1820 + 800 + 4500)

    # Not paid by 28 Dec: overdue on the 29th with the first reminder; once only.
    with app.app_context():
        assert invoices.collect_overdue(db, now=at(date(2026, 12, 28))) == 0
        assert invoices.collect_overdue(db, now=at(date(2026, 12, 29))) == 1
        assert invoices.collect_overdue(db, now=at(date(2026, 12, 30))) == 0
        assert invoices.collect_overdue(db, now=at(date(2027, 1, 4))) == 1  # day 7
    db.refresh(inv2)
    assert (inv2.status, inv2.reminders_sent) == (InvoiceStatus.OVERDUE, 2)
    reminder = db.scalar(
        select(OutboxEmail).where(OutboxEmail.dedupe_key == f"invoice-reminder:{inv2.id}:1")
    )
    assert "£71.20 is still unpaid" in reminder.body


# --- Edges of the model ------------------------------------------------------------------------


def test_a_change_before_the_billing_run_takes_the_fee_at_the_old_plan_first(db, catalogue):
    account = customer(db, catalogue["Professional"], model=BillingModel.PREPAID)
    generate(db, account, at(date(2026, 11, 14), 1))
    # 14 Dec 00:30: the run for the new period has not happened yet; the customer upgrades.
    change(db, account, catalogue["Complete"], at(date(2026, 12, 14), 0), "early")
    fee = entry(db, account, "plan-fee:2026-12-14")
    assert fee.amount_minor == -2500  # the period's fee at the plan in force at its start
    assert entry(db, account, "early").amount_minor == -2000  # 30 of 30 days: (45 - 25)
    (inv2,) = generate(db, account, at(date(2026, 12, 14), 2))
    assert lines(inv2) == [("plan_fee", 2500)]  # the upgrade belongs to the next invoice
    (inv3,) = generate(db, account, at(date(2027, 1, 14), 2))
    assert lines(inv3) == [("plan_change", 2000), ("plan_fee", 4500)]


def test_missed_runs_catch_up_one_invoice_per_period_in_order(db, catalogue):
    account = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    usage(db, account, 100, at(date(2026, 12, 20)), "u1")
    made = generate(db, account, at(date(2027, 2, 20)))
    assert [inv.period_start for inv in made] == [
        date(2026, 11, 14),
        date(2026, 12, 14),
        date(2027, 1, 14),
        date(2027, 2, 14),
    ]
    assert [inv.number for inv in made] == [1, 2, 3, 4]
    assert [lines(inv) for inv in made][2] == [("plan_fee", 2500), ("usage", 100)]
    assert generate(db, account, at(date(2027, 2, 21))) == []


def test_a_subscription_starting_inside_a_period_pays_its_days(db, catalogue):
    account = customer(
        db, catalogue["Complete"], model=BillingModel.PREPAID, started=date(2026, 12, 2)
    )
    (first,) = generate(db, account, at(date(2026, 12, 2), 13))
    assert (first.period_start, first.period_end) == (date(2026, 11, 14), date(2026, 12, 13))
    assert lines(first) == [("plan_fee", 1800)]  # 45 x 12/30


def test_review_shows_the_due_invoice_then_the_coming_one(db, catalogue):
    account = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    due = invoices.review_billing_details(db, account=account, now=at(date(2026, 11, 14), 1))
    assert due.due_now and due.period.start == date(2026, 11, 14)
    assert [(line.kind, line.amount_minor) for line in due.lines] == [("plan_fee", 2500)]
    generate(db, account, at(date(2026, 11, 14), 1))
    usage(db, account, 300, at(date(2026, 11, 20)), "u")
    coming = invoices.review_billing_details(db, account=account, now=at(date(2026, 11, 21)))
    assert not coming.due_now and coming.period.start == date(2026, 12, 14)
    assert sorted((line.kind, line.amount_minor) for line in coming.lines) == [
        ("plan_fee", 2500),
        ("usage", 300),
    ]
    assert coming.total_minor == 2800
    # The preview is what generation then stores.
    (stored,) = generate(db, account, at(date(2026, 12, 14), 1))
    assert lines(stored) == sorted((line.kind, line.amount_minor) for line in coming.lines)


# --- The invariant, as a property --------------------------------------------------------------

PRICES = [0, 999, 2500, 4500, 10001]


@dataclass
class Scenario:
    model: BillingModel
    anchor_day: int
    start: date
    periods: int
    run_hour: int = 0  # the billing run's hour on each period's first day
    events: list[tuple[int, int, int, str, int]] = field(default_factory=list)
    # (period index, day in period, hour, kind, argument)


@st.composite
def scenarios(draw):
    scenario = Scenario(
        model=draw(st.sampled_from([BillingModel.PREPAID, BillingModel.POSTPAID])),
        anchor_day=draw(st.integers(1, 31)),
        start=draw(st.dates(min_value=date(2027, 1, 1), max_value=date(2028, 12, 31))),
        periods=draw(st.integers(1, 3)),
        run_hour=draw(st.integers(0, 23)),
    )
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, scenario.periods - 1),
                st.integers(0, 30),
                st.integers(0, 23),
                st.sampled_from(["change", "change", "usage", "addon"]),
                st.integers(0, 10_000),
            ),
            max_size=12,
        )
    )
    scenario.events = sorted(events)
    return scenario


def run_scenario(db, scenario: Scenario) -> None:
    reseller = make_reseller(db)
    catalogue = [make_plan(db, f"P{price}", price) for price in PRICES]
    addon = AddOn(service="extensions", label="Extras", units=1, price_minor=700, currency="GBP")
    db.add(addon)
    db.flush()
    first = plans.billing_period(scenario.anchor_day, scenario.start)
    account = customer(
        db,
        catalogue[1],
        model=scenario.model,
        anchor_day=scenario.anchor_day,
        started=first.start,
        reseller=reseller,
    )
    periods = [first]
    for _ in range(scenario.periods):
        periods.append(plans.billing_period(scenario.anchor_day, periods[-1].end))
    current = 1  # index into catalogue of the plan in force
    # What each period's days were worth: the plan in force each day (changes count from
    # their day on), and how many changes happened in it.
    day_plan = {}
    changes_in = [0] * scenario.periods
    grants_in = [0] * scenario.periods
    charges_in = [0] * scenario.periods
    events = iter(scenario.events)
    pending = next(events, None)
    for index in range(scenario.periods):
        period = periods[index]
        run_done = False
        for offset in range(period.days):
            day = period.start + timedelta(days=offset)
            while (
                pending is not None
                and pending[0] == index
                and min(pending[1], period.days - 1) == offset
            ):
                _, _, hour, kind, argument = pending
                if not run_done and hour >= scenario.run_hour:
                    generate(db, account, at(period.start, scenario.run_hour))
                    run_done = True
                when = at(day, hour)
                key = f"e{index}-{offset}-{hour}-{kind}-{argument}-{id(pending)}"
                if kind == "change":
                    target = argument % len(PRICES)
                    if target != current:
                        preview = plans.preview_plan_change(
                            db, account=account, plan_id=catalogue[target].id, today=day
                        )
                        result = change(db, account, catalogue[target], when, key)
                        assert result.preview == preview
                        posted = ledger.find_entry(db, account.id, key)
                        grant = db.scalar(
                            select(ReserveGrant).where(
                                ReserveGrant.account_id == account.id,
                                ReserveGrant.idempotency_key == key,
                            )
                        )
                        # The preview is what was charged or granted.
                        assert (-posted.amount_minor if posted else 0) == preview.charge_minor
                        assert (grant.amount_minor if grant else 0) == preview.reserve_minor
                        charges_in[index] += preview.charge_minor
                        grants_in[index] += preview.reserve_minor
                        changes_in[index] += 1
                        current = target
                elif kind == "usage":
                    usage(db, account, argument + 1, when, key)
                else:
                    plans.buy_addon(
                        db,
                        account=account,
                        addon_id=addon.id,
                        quantity=1 + argument % 3,
                        actor_user_id=None,
                        idempotency_key=key,
                        now=when,
                    )
                pending = next(events, None)
            if not run_done:  # changes before the run still leave one fee, at the old plan
                generate(db, account, at(period.start, scenario.run_hour))
                run_done = True
            day_plan[day] = PRICES[current]
    generate(db, account, at(periods[-1].start, 0))
    db.expire_all()

    # Rule 5: plan money of each period less reserve granted == what its days were worth.
    for index in range(scenario.periods):
        period = periods[index]
        fee = ledger.find_entry(db, account.id, plans.fee_key(period))
        paid = -fee.amount_minor + charges_in[index] - grants_in[index]
        worth = sum(
            Fraction(day_plan[period.start + timedelta(days=d)], period.days)
            for d in range(period.days)
        )
        assert abs(paid - worth) <= changes_in[index], (index, paid, worth)

    # Every invoice adds up; every billed debit and every fee is on exactly one invoice.
    issued = db.scalars(
        select(Invoice).where(Invoice.account_id == account.id).order_by(Invoice.period_start)
    ).all()
    assert [inv.period_start for inv in issued] == [p.start for p in periods]
    for invoice in issued:
        assert invoice.total_minor == sum(line.amount_minor for line in invoice.lines)
        assert invoice.subtotal_minor + invoice.tax_minor == invoice.total_minor
        expected = InvoiceStatus.PAID if scenario.model == BillingModel.PREPAID else "open"
        assert invoice.status == expected or invoice.total_minor == 0
    billed = db.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
            LedgerEntry.account_id == account.id,
            LedgerEntry.kind.in_(
                [EntryKind.USAGE, EntryKind.ADDON, EntryKind.PLAN_CHANGE, EntryKind.PLAN_FEE]
            ),
        )
    )
    assert sum(invoice.total_minor for invoice in issued) == -billed
    fees = db.scalar(
        select(func.count()).where(
            LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.PLAN_FEE
        )
    )
    assert fees == len(periods)
    assert ledger.audit_balances(db) == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_changes_usage_and_add_ons_bill_each_period_what_its_days_were_worth(db, scenario):
    run_scenario(db, scenario)


@pytest.mark.postgres
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_the_same_on_postgresql(pg_db, scenario):
    run_scenario(pg_db, scenario)


# --- Void with a credit note ---------------------------------------------------------------------


def test_void_gives_back_the_total_with_a_numbered_credit_note(db, catalogue):
    from portal.domain import ValidationFailed

    bob = customer(db, catalogue["Professional"], model=BillingModel.POSTPAID)
    usage(db, bob, 500, at(date(2026, 11, 1)), "u")
    (inv1,) = generate(db, bob, at(date(2026, 11, 14), 1))
    locked = ledger.lock_account(db, bob.id)
    allocate_payment(db, account=locked, amount_minor=1000, source="Card")  # part paid
    db.commit()
    with pytest.raises(ValidationFailed):
        invoices.void_invoice(db, invoice=inv1, reason="  ", actor_user_id=None)
    note = invoices.void_invoice(db, invoice=inv1, reason="Wrong plan", actor_user_id=None)
    assert invoices.credit_note_number(note) == f"CN-{inv1.reseller_id}-000001"
    assert note.amount_minor == inv1.total_minor == 3000
    db.expire_all()
    assert db.get(Invoice, inv1.id).status == InvoiceStatus.VOID
    assert entry(db, bob, f"credit-note:{inv1.id}").amount_minor == 3000
    assert invoices.unallocated_minor(db, bob.id) == 1000  # what was paid waits for the next
    with pytest.raises(ValidationFailed, match="already void"):
        invoices.void_invoice(db, invoice=inv1, reason="Again", actor_user_id=None)
    with pytest.raises(ValidationFailed, match="void invoice cannot be sent"):
        invoices.send_invoice(
            db, invoice=db.get(Invoice, inv1.id), account=bob, now=at(date(2026, 11, 15))
        )
    # The next invoice number is not taken by the credit note.
    (inv2,) = generate(db, bob, at(date(2026, 12, 14), 1))
    assert inv2.number == 2 and inv2.paid_minor == 1000
    assert ledger.audit_balances(db) == []


def test_after_a_scheduler_outage_a_change_takes_the_missed_fees_at_the_old_plan(db, catalogue):
    account = customer(db, catalogue["Professional"], model=BillingModel.PREPAID)
    generate(db, account, at(date(2026, 11, 14), 1))
    # No billing run on 14 Dec nor 14 Jan; the customer upgrades on 20 Jan.
    change(db, account, catalogue["Complete"], at(date(2027, 1, 20)), "late")
    assert entry(db, account, "plan-fee:2026-12-14").amount_minor == -2500
    assert entry(db, account, "plan-fee:2027-01-14").amount_minor == -2500
    made = generate(db, account, at(date(2027, 1, 21)))
    assert [lines(inv) for inv in made] == [[("plan_fee", 2500)], [("plan_fee", 2500)]]
