"""Change plan: billing period, proration, upgrade charge, downgrade reserve credit, limits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal import plans
from portal.models import (
    Account,
    AccountAddOn,
    EntryKind,
    LedgerEntry,
    LicenseUsage,
    ReserveGrant,
    Subscription,
    utcnow,
)
from tests.billing.plan_helpers import HTMX, fund, make_addon, make_plans, reread, subscribe
from tests.builders import login, make_customer

# --- Billing period ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "today", "start", "end"),
    [
        (1, date(2025, 6, 19), date(2025, 6, 1), date(2025, 7, 1)),
        (15, date(2025, 6, 15), date(2025, 6, 15), date(2025, 7, 15)),
        (15, date(2025, 6, 14), date(2025, 5, 15), date(2025, 6, 15)),
        (31, date(2025, 2, 28), date(2025, 2, 28), date(2025, 3, 31)),  # clamped in February
        (31, date(2025, 2, 27), date(2025, 1, 31), date(2025, 2, 28)),
        (31, date(2024, 2, 29), date(2024, 2, 29), date(2024, 3, 31)),  # leap year
        (30, date(2025, 3, 1), date(2025, 2, 28), date(2025, 3, 30)),
        (31, date(2025, 4, 30), date(2025, 4, 30), date(2025, 5, 31)),
        (5, date(2025, 1, 3), date(2024, 12, 5), date(2025, 1, 5)),  # across the year end
        (20, date(2025, 12, 25), date(2025, 12, 20), date(2026, 1, 20)),
    ],
)
def test_billing_period_is_anchored_and_clamped_to_month_end(anchor, today, start, end):
    period = plans.billing_period(anchor, today)
    assert (period.start, period.end) == (start, end)
    assert period.days == (end - start).days


@given(
    anchor=st.integers(1, 31),
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
)
def test_billing_period_properties(anchor, today):
    period = plans.billing_period(anchor, today)
    assert period.start <= today < period.end
    assert 28 <= period.days <= 31
    assert 1 <= period.days_left(today) <= period.days
    for day in (period.start, period.end):
        assert day == plans.anchor_date(day.year, day.month, anchor)


def test_days_left_counts_today_and_reads_in_words():
    period = plans.billing_period(1, date(2025, 6, 19))
    assert period.days_left(date(2025, 6, 19)) == 12
    assert period.days_left(date(2025, 6, 1)) == 30  # first day: the whole period is left
    assert period.days_left(date(2025, 6, 30)) == 1


# --- Proration arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "left", "days", "expected"),
    [
        (2000, 12, 30, 800),
        (3500, 12, 30, 1400),
        (1000, 1, 31, 32),  # 32.258... -> 32
        (1000, 2, 31, 65),  # 64.516... -> 65
        (5, 1, 2, 2),  # 2.5 -> 2 (ties to even)
        (15, 1, 2, 8),  # 7.5 -> 8 (ties to even)
        (1, 1, 2, 0),  # 0.5 -> 0
        (3, 1, 2, 2),  # 1.5 -> 2
        (1500, 28, 28, 1500),
        (0, 5, 30, 0),
    ],
)
def test_prorate_rounds_half_even(amount, left, days, expected):
    assert plans.prorate(amount, left, days) == expected


@given(
    amount=st.integers(0, 10**12),
    days=st.integers(28, 31),
    data=st.data(),
)
def test_prorate_matches_decimal_half_even(amount, days, data):
    left = data.draw(st.integers(1, days))
    exact = Decimal(amount) * left / Decimal(days)
    expected = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    assert plans.prorate(amount, left, days) == expected
    assert isinstance(plans.prorate(amount, left, days), int)


@pytest.mark.parametrize(
    ("granted", "expires"),
    [
        (datetime(2025, 1, 31, 10, tzinfo=UTC), datetime(2025, 2, 28, 10, tzinfo=UTC)),
        (datetime(2024, 1, 31, 10, tzinfo=UTC), datetime(2024, 2, 29, 10, tzinfo=UTC)),
        (datetime(2025, 12, 15, 8, tzinfo=UTC), datetime(2026, 1, 15, 8, tzinfo=UTC)),
        (datetime(2025, 3, 31, 0, tzinfo=UTC), datetime(2025, 4, 30, 0, tzinfo=UTC)),
    ],
)
def test_reserve_expires_one_calendar_month_after_grant(granted, expires):
    assert plans.add_one_month(granted) == expires


# --- Domain: preview and change -----------------------------------------------------------------

TODAY = date(2025, 6, 19)  # anchor 1: 12 of 30 days left
NOW = datetime(2025, 6, 19, 12, tzinfo=UTC)


@pytest.fixture
def alice(app, db):
    user = make_customer(db)
    catalogue = make_plans(db)
    account = db.get(Account, user.account_id)
    usage = {"extensions": 8, "phone_numbers": 2}
    subscribe(db, account, catalogue["Complete"], anchor_day=1, usage=usage)
    fund(db, account, 5000)
    db.commit()
    return {"user": user, "account": account, "plans": catalogue}


def test_preview_upgrade_and_downgrade_amounts(app, db, alice):
    account, catalogue = alice["account"], alice["plans"]
    down = plans.preview_plan_change(
        db, account=account, plan_id=catalogue["Professional"].id, today=TODAY
    )
    assert (down.days_left, down.days_in_period) == (12, 30)
    assert down.days_in_words == "12 of 30 days left"
    assert (down.charge_minor, down.reserve_minor) == (0, 800)  # (45 - 25) x 12/30
    assert down.direction == "downgrade"
    assert down.formula_in_words == "(£45.00 - £25.00) × 12 of 30 days left = £8.00"
    assert down.allowed


def test_upgrade_charges_prorated_difference_to_balance(app, db, alice):
    account, catalogue = alice["account"], alice["plans"]
    sub = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    sub.plan_id = catalogue["Starter"].id
    db.commit()
    db.expire_all()
    result = plans.change_plan(
        db,
        account=account,
        plan_id=catalogue["Complete"].id,
        actor_user_id=alice["user"].id,
        idempotency_key="plan:1",
        now=NOW,
    )
    assert result.preview.charge_minor == 1400  # (45 - 10) x 12/30
    db.expire_all()
    assert db.get(Account, account.id).balance_minor == 5000 - 1400
    entry = db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.PLAN_CHANGE))
    assert entry.amount_minor == -1400 and "12 of 30 days left" in entry.description
    assert db.get(Subscription, sub.id).plan_id == catalogue["Complete"].id
    assert db.scalar(select(func.count(ReserveGrant.id))) == 0


def test_downgrade_grants_reserve_credit_not_cash(app, db, alice):
    account, catalogue = alice["account"], alice["plans"]
    result = plans.change_plan(
        db,
        account=account,
        plan_id=catalogue["Professional"].id,
        actor_user_id=alice["user"].id,
        idempotency_key="plan:2",
        now=NOW,
    )
    db.expire_all()
    grant = db.scalar(select(ReserveGrant))
    assert result.grant.id == grant.id
    assert (grant.amount_minor, grant.remaining_minor) == (800, 800)
    assert grant.source == "Downgrade from Complete to Professional"
    assert grant.expires_at == plans.add_one_month(grant.granted_at)
    assert db.get(Account, account.id).balance_minor == 5000  # no cash
    assert db.scalar(select(func.count(LedgerEntry.id))) == 1  # only the funding entry
    # the new, lower limits apply at once
    rows = {row.service: row for row in plans.license_rows(db, account)}
    assert rows["extensions"].limit == 10


def test_downgrade_refused_while_usage_exceeds_new_limit(app, db, alice):
    account, catalogue = alice["account"], alice["plans"]
    usage = db.scalar(select(LicenseUsage).where(LicenseUsage.service == "extensions"))
    usage.used = 12
    db.commit()
    with pytest.raises(plans.PlanChangeRefused) as refused:
        plans.change_plan(
            db,
            account=account,
            plan_id=catalogue["Professional"].id,
            actor_user_id=None,
            idempotency_key="plan:3",
            now=NOW,
        )
    assert refused.value.message == "You use 12 Extensions; Professional allows 10."
    db.expire_all()
    assert db.scalar(select(Subscription.plan_id)) == catalogue["Complete"].id
    assert db.scalar(select(func.count(ReserveGrant.id))) == 0


def test_bought_add_ons_count_towards_the_new_limit(app, db, alice):
    account, catalogue = alice["account"], alice["plans"]
    usage = db.scalar(select(LicenseUsage).where(LicenseUsage.service == "extensions"))
    usage.used = 12
    addon = make_addon(db, units=5)
    db.add(AccountAddOn(account_id=account.id, addon_id=addon.id, quantity=1, price_paid_minor=500))
    db.commit()
    preview = plans.preview_plan_change(
        db, account=account, plan_id=catalogue["Professional"].id, today=TODAY
    )
    assert preview.violations == []  # 10 + 5 >= 12


# --- Through the pages --------------------------------------------------------------------------


def _signed_in(client, alice):
    login(client, alice["user"].email)


def test_plan_page_shows_plans_side_by_side_with_current_marked(client, alice):
    _signed_in(client, alice)
    page = client.get("/billing/plan")
    assert page.status_code == 200
    html = page.text
    assert "<html" in html and 'class="plans"' in html
    for name, price in (("Starter", "£10.00"), ("Professional", "£25.00"), ("Complete", "£45.00")):
        assert name in html and price in html
    assert html.count('class="plan current"') == 1
    assert "Current plan" in html and "Choose Professional" in html
    assert "Choose Complete" not in html


def test_choosing_a_plan_shows_preview_fragment_by_htmx(client, alice):
    _signed_in(client, alice)
    plan_id = alice["plans"]["Professional"].id
    fragment = client.get(f"/billing/plan?plan_id={plan_id}", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'id="plan-preview"' in fragment.text
    assert "Reserve credit granted" in fragment.text and "days left" in fragment.text
    assert ">Change plan</button>" in fragment.text
    full = client.get(f"/billing/plan?plan_id={plan_id}")
    assert "<html" in full.text and ">Change plan</button>" in full.text


def test_confirming_a_downgrade_by_htmx_grants_reserve_credit(client, db, alice):
    _signed_in(client, alice)
    plan_id = alice["plans"]["Professional"].id
    answer = client.post(
        "/billing/plan", data={"plan_id": plan_id, "request_id": "a" * 32}, headers=HTMX
    )
    assert answer.status_code == 200
    assert "You are now on Professional." in answer.text and "reserve credit" in answer.text
    again = client.post(
        "/billing/plan", data={"plan_id": plan_id, "request_id": "a" * 32}, headers=HTMX
    )
    assert "already" in again.text
    reread(db)
    assert db.scalar(select(Subscription.plan_id)) == plan_id
    assert db.scalar(select(func.count(ReserveGrant.id))) == 1


def test_confirming_without_htmx_redirects_with_a_message(client, db, alice):
    _signed_in(client, alice)
    plan_id = alice["plans"]["Professional"].id
    answer = client.post("/billing/plan", data={"plan_id": plan_id})
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"])
    assert "You are now on Professional." in page.text
    reread(db)
    assert db.scalar(select(Subscription.plan_id)) == plan_id


def test_upgrade_refused_without_funds_changes_nothing(client, db, alice):
    account = alice["account"]
    sub = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    sub.plan = alice["plans"]["Starter"]
    # The billing run took this period's fee (£10.00) in advance; then £39.90 was spent.
    period = plans.billing_period(1, utcnow().date())
    plans.charge_period_fee(db, account=account, subscription=sub, period=period)
    fund(db, account, -3990, key="spend")  # leaves £0.10
    db.commit()
    _signed_in(client, alice)
    answer = client.post(
        "/billing/plan", data={"plan_id": alice["plans"]["Complete"].id}, headers=HTMX
    )
    assert answer.status_code == 200
    assert "Your available funds (£0.10) do not cover" in answer.text
    assert "Add credit first" in answer.text
    reread(db)
    assert db.get(Account, account.id).balance_minor == 10
    assert db.scalar(select(Subscription.plan_id)) == alice["plans"]["Starter"].id
    kinds = db.scalars(select(LedgerEntry.kind)).all()
    assert EntryKind.PLAN_CHANGE not in kinds
    full = client.post("/billing/plan", data={"plan_id": alice["plans"]["Complete"].id})
    assert full.status_code == 422 and "do not cover" in full.text


def test_downgrade_over_limit_page_names_the_license_and_numbers(client, db, alice):
    usage = db.scalar(select(LicenseUsage).where(LicenseUsage.service == "extensions"))
    usage.used = 12
    db.commit()
    _signed_in(client, alice)
    plan_id = alice["plans"]["Professional"].id
    preview = client.get(f"/billing/plan?plan_id={plan_id}", headers=HTMX)
    assert "You use 12 Extensions; Professional allows 10." in preview.text
    assert ">Change plan</button>" not in preview.text
    refused = client.post("/billing/plan", data={"plan_id": plan_id}, headers=HTMX)
    assert "You use 12 Extensions; Professional allows 10." in refused.text
    reread(db)
    assert db.scalar(select(Subscription.plan_id)) == alice["plans"]["Complete"].id


@pytest.mark.parametrize(
    "raw", ["", "abc", "-1", "0", "NaN", "1.5", "99999999999999999999999999", "1e3", "９"]
)
def test_bad_plan_ids_never_500(client, db, alice, raw):
    _signed_in(client, alice)
    for headers in ({}, HTMX):
        preview = client.get("/billing/plan", query_string={"plan_id": raw}, headers=headers)
        assert preview.status_code in (200, 404, 422)
        change = client.post("/billing/plan", data={"plan_id": raw}, headers=headers)
        assert change.status_code in (200, 422)
        assert "alert-error" in change.text
    reread(db)
    assert db.scalar(select(Subscription.plan_id)) == alice["plans"]["Complete"].id


def test_foreign_currency_plan_and_same_plan_are_refused(client, db, alice):
    usd = make_plans(db, currency="USD")
    db.commit()
    _signed_in(client, alice)
    foreign = client.get(f"/billing/plan?plan_id={usd['Starter'].id}")
    assert foreign.status_code == 404 and "That plan is not available." in foreign.text
    assert "USD" not in client.get("/billing/plan").text
    same = client.post(
        "/billing/plan", data={"plan_id": alice["plans"]["Complete"].id}, headers=HTMX
    )
    assert "You are already on Complete." in same.text
    refused = client.post("/billing/plan", data={"plan_id": usd["Starter"].id}, headers=HTMX)
    assert "That plan is not available." in refused.text
    reread(db)
    assert db.scalar(select(Subscription.plan_id)) == alice["plans"]["Complete"].id


def test_preview_on_the_page_matches_todays_period(client, alice):
    _signed_in(client, alice)
    today = utcnow().date()
    period = plans.billing_period(1, today)
    left = period.days_left(today)
    fragment = client.get(
        f"/billing/plan?plan_id={alice['plans']['Professional'].id}", headers=HTMX
    ).text
    assert f"{left} of {period.days} days left" in fragment
    expected = plans.prorate(2000, left, period.days)
    assert f"£{expected // 100}.{expected % 100:02d}" in fragment


def test_reserve_grant_expiry_is_a_month_after_now(app, db, alice):
    before = utcnow()
    plans.change_plan(
        db,
        account=alice["account"],
        plan_id=alice["plans"]["Professional"].id,
        actor_user_id=None,
        idempotency_key="plan:9",
    )
    grant = db.scalar(select(ReserveGrant))
    assert timedelta(days=28) <= grant.expires_at - before <= timedelta(days=31, seconds=5)


def test_htmx_get_without_a_choice_returns_the_plans_fragment(client, alice):
    _signed_in(client, alice)
    fragment = client.get("/billing/plan", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="plan-area"' in fragment.text


def test_account_without_subscription_sees_plans_but_cannot_change(client, db, alice):
    user = make_customer(db)
    db.commit()
    login(client, user.email)
    page = client.get("/billing/plan")
    assert page.status_code == 200 and "no plan yet" in page.text
    answer = client.post("/billing/plan", data={"plan_id": alice["plans"]["Starter"].id})
    assert answer.status_code == 422 and "no plan yet" in answer.text
    assert client.get("/billing/license").status_code == 200
