"""Plan license: Label, Limit, Used, Remaining, and add-ons paid reserve-first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import ledger, plans
from portal.models import (
    Account,
    AccountAddOn,
    EntryKind,
    GrantStatus,
    LedgerEntry,
    ReserveGrant,
    ReserveUse,
)
from tests.billing.plan_helpers import (
    HTMX,
    fund,
    make_addon,
    make_grant,
    make_plans,
    reread,
    subscribe,
)
from tests.builders import login, make_customer


@pytest.fixture
def setup(app, db):
    user = make_customer(db)
    account = db.get(Account, user.account_id)
    catalogue = make_plans(db)
    subscribe(db, account, catalogue["Professional"], usage={"extensions": 8})
    addon = make_addon(db, units=5, price_minor=500)
    fund(db, account, 1000)
    db.commit()
    return {"user": user, "account": account, "addon": addon, "plans": catalogue}


def _buy(client, setup, quantity="1", addon_id=None, headers=HTMX, request_id=None):
    addon_id = addon_id or setup["addon"].id
    data = {f"addon-{addon_id}-quantity": quantity}
    if request_id:
        data[f"addon-{addon_id}-request_id"] = request_id
    return client.post(f"/billing/license/addons/{addon_id}", data=data, headers=headers)


def test_license_rows_add_plan_limit_and_add_ons(app, db, setup):
    account = setup["account"]
    rows = plans.license_rows(db, account)
    assert [(r.label, r.limit, r.used, r.remaining) for r in rows] == [
        ("Extensions", 10, 8, 2),
        ("Phone numbers", 5, 0, 5),
    ]
    db.add(
        AccountAddOn(
            account_id=account.id, addon_id=setup["addon"].id, quantity=2, price_paid_minor=1000
        )
    )
    db.flush()
    assert plans.license_rows(db, account)[0].limit == 20


def test_license_page_has_table_usage_bars_and_buy_forms(client, setup):
    login(client, setup["user"].email)
    page = client.get("/billing/license")
    assert page.status_code == 200 and "<html" in page.text
    for header in ("<th>Label</th>", ">Limit</th>", ">Used</th>", ">Remaining</th>"):
        assert header in page.text
    assert '<progress value="8" max="10"' in page.text
    assert ">Buy</button>" in page.text and 'for="addon-' in page.text and "Quantity" in page.text
    fragment = client.get("/billing/license", headers=HTMX)
    assert "<html" not in fragment.text and 'id="license-area"' in fragment.text


def test_add_on_paid_with_reserve_first_soonest_expiring_first_then_balance(client, db, setup):
    account = setup["account"]
    later = make_grant(db, account, amount_minor=400, expires_in=timedelta(days=25))
    sooner = make_grant(db, account, amount_minor=300, expires_in=timedelta(days=3))
    db.commit()
    login(client, setup["user"].email)
    answer = _buy(client, setup, quantity="2")  # 2 x £5.00 = £10.00
    assert answer.status_code == 200
    assert "£7.00 from reserve credit, £3.00 from your balance" in answer.text
    reread(db)
    sooner, later = db.get(ReserveGrant, sooner.id), db.get(ReserveGrant, later.id)
    assert (sooner.remaining_minor, sooner.status) == (0, GrantStatus.USED)
    assert (later.remaining_minor, later.status) == (0, GrantStatus.USED)
    uses = db.execute(select(ReserveUse.grant_id, ReserveUse.amount_minor).order_by(ReserveUse.id))
    assert uses.all() == [(sooner.id, 300), (later.id, 400)]
    assert db.get(Account, account.id).balance_minor == 1000 - 300
    entry = db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.ADDON))
    assert entry.amount_minor == -300
    assert db.scalar(select(func.sum(AccountAddOn.quantity))) == 2
    # the limit rose at once
    assert plans.license_rows(db, db.get(Account, account.id))[0].limit == 20
    assert ledger.audit_balances(db) == []


def test_add_on_fully_covered_by_reserve_leaves_balance_alone(client, db, setup):
    account = setup["account"]
    grant = make_grant(db, account, amount_minor=2000)
    db.commit()
    login(client, setup["user"].email)
    _buy(client, setup, quantity="1")
    reread(db)
    assert db.get(ReserveGrant, grant.id).remaining_minor == 1500
    assert db.get(Account, account.id).balance_minor == 1000


def test_expired_reserve_is_not_usable(client, db, setup):
    account = setup["account"]
    # Past its expiry but the expiry job has not run yet: still must not be spent.
    stale = make_grant(db, account, amount_minor=5000, expires_in=timedelta(seconds=-1))
    db.commit()
    login(client, setup["user"].email)
    answer = _buy(client, setup, quantity="1")
    assert "£0.00 from reserve credit, £5.00 from your balance" in answer.text
    reread(db)
    assert db.get(ReserveGrant, stale.id).remaining_minor == 5000
    assert db.get(Account, account.id).balance_minor == 500


def test_purchase_refused_without_funds_changes_nothing(client, db, setup):
    account = setup["account"]
    grant = make_grant(db, account, amount_minor=200)
    db.commit()
    login(client, setup["user"].email)
    answer = _buy(client, setup, quantity="3")  # £15.00: £2.00 reserve + £13.00 > £10.00
    assert answer.status_code == 200
    assert "do not cover the rest" in answer.text
    full = _buy(client, setup, quantity="3", headers={})
    assert full.status_code == 422
    reread(db)
    assert db.get(ReserveGrant, grant.id).remaining_minor == 200
    assert db.scalar(select(func.count(ReserveUse.id))) == 0
    assert db.scalar(select(func.count(AccountAddOn.id))) == 0
    assert db.get(Account, account.id).balance_minor == 1000


def test_double_submit_buys_once(client, db, setup):
    login(client, setup["user"].email)
    first = _buy(client, setup, request_id="b" * 32)
    second = _buy(client, setup, request_id="b" * 32)
    assert first.status_code == second.status_code == 200
    reread(db)
    assert db.scalar(select(func.count(AccountAddOn.id))) == 1
    assert db.get(Account, setup["account"].id).balance_minor == 500


def test_buy_without_htmx_redirects_to_license(client, db, setup):
    login(client, setup["user"].email)
    answer = _buy(client, setup, headers={})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/billing/license")
    assert "Bought 5 extra extensions" in client.get("/billing/license").text


@pytest.mark.parametrize(
    "quantity", ["", "0", "-1", "NaN", "1.5", "101", "99999999999999999999999", "abc", "1e2"]
)
def test_bad_quantities_are_refused_inline(client, db, setup, quantity):
    login(client, setup["user"].email)
    answer = _buy(client, setup, quantity=quantity)
    assert answer.status_code == 200
    assert "field-error" in answer.text
    assert _buy(client, setup, quantity=quantity, headers={}).status_code == 422
    reread(db)
    assert db.scalar(select(func.count(AccountAddOn.id))) == 0
    assert db.get(Account, setup["account"].id).balance_minor == 1000


def test_foreign_and_unknown_add_ons_answer_404(client, db, setup):
    usd = make_addon(db, currency="USD")
    db.commit()
    login(client, setup["user"].email)
    assert _buy(client, setup, addon_id=usd.id).status_code == 404
    assert _buy(client, setup, addon_id=99999).status_code == 404
    huge_id = "999999999999999999999999"
    huge = client.post(
        f"/billing/license/addons/{huge_id}", data={f"addon-{huge_id}-quantity": "1"}
    )
    assert huge.status_code == 404
    assert client.post("/billing/license/addons/-1", data={}).status_code in (404, 405)
    reread(db)
    assert db.scalar(select(func.count(AccountAddOn.id))) == 0


def test_forms_work_with_csrf_enabled_without_htmx(app, client, db, setup):
    app.config["WTF_CSRF_ENABLED"] = True
    login_page = client.get("/login").text
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    login_data = {"email": setup["user"].email, "password": "test-pass", "csrf_token": token}
    assert client.post("/login", data=login_data).status_code == 302
    addon_id = setup["addon"].id
    page = client.get("/billing/license").text
    field = f'name="addon-{addon_id}-csrf_token" type="hidden" value="'
    form_token = page.split(field)[1].split('"')[0]
    data = {f"addon-{addon_id}-quantity": "1"}
    assert client.post(f"/billing/license/addons/{addon_id}", data=data).status_code == 400
    data[f"addon-{addon_id}-csrf_token"] = form_token
    assert client.post(f"/billing/license/addons/{addon_id}", data=data).status_code == 303
    # the plan confirm form carries the token too
    plan_id = setup["plans"]["Starter"].id
    preview = client.get(f"/billing/plan?plan_id={plan_id}").text
    plan_token = preview.split('name="csrf_token" value="')[1].split('"')[0]
    reread(db)
    assert db.scalar(select(func.count(AccountAddOn.id))) == 1
    assert plan_token
