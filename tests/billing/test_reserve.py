"""Reserve credit page: grants, status, details by HTMX, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import ledger, plans
from portal.models import Account, GrantStatus, ReserveGrant, ReserveUse, utcnow
from tests.billing.plan_helpers import HTMX, fund, make_addon, make_grant, reread
from tests.builders import login, make_customer


@pytest.fixture
def setup(app, db):
    user = make_customer(db)
    account = db.get(Account, user.account_id)
    fund(db, account, 1000)
    active = make_grant(db, account, amount_minor=800, expires_in=timedelta(days=20))
    old = make_grant(
        db,
        account,
        amount_minor=450,
        expires_in=timedelta(days=-2),
        source="downgrade Professional -> Starter",
    )
    db.add(ReserveUse(grant_id=old.id, amount_minor=150, purpose="Extra phone number × 1"))
    old.remaining_minor = 300
    db.commit()
    return {"user": user, "account": account, "active": active, "old": old}


def test_reserve_page_lists_grants_with_status(client, setup):
    login(client, setup["user"].email)
    page = client.get("/billing/reserve")
    assert page.status_code == 200 and "<html" in page.text
    html = page.text
    assert "Downgrade from Complete to Professional" in html
    assert "downgrade Professional -&gt; Starter" in html
    assert "£8.00" in html and "£4.50" in html and "£3.00" in html
    for header in ("Amount", "Remaining", "Source", "Granted on", "Expires on", "Status"):
        assert header in html
    # past its expiry: shown expired (with text, not only colour) even before the job runs
    assert '<span class="badge badge-expired">Expired</span>' in html
    assert '<span class="badge badge-active">Active</span>' in html
    assert 'id="reserve-total">£8.00<' in html  # only the unexpired grant is usable
    assert ">Details</a>" in html
    fragment = client.get("/billing/reserve", headers=HTMX)
    assert "<html" not in fragment.text and 'id="reserve-area"' in fragment.text


def test_details_expand_by_htmx_with_uses_and_expiry(client, setup):
    login(client, setup["user"].email)
    old = setup["old"]
    details = client.get(f"/billing/reserve/{old.id}", headers=HTMX)
    assert details.status_code == 200
    assert details.text.lstrip().startswith("<tr") and "<html" not in details.text
    assert "Extra phone number × 1" in details.text and "£1.50" in details.text
    assert "Expired on" in details.text and "£3.00 expired unused" in details.text
    fresh = client.get(f"/billing/reserve/{setup['active'].id}", headers=HTMX)
    assert "Not used yet." in fresh.text and "£8.00 left; expires on" in fresh.text
    hidden = client.get(f"/billing/reserve/{old.id}?hide=1", headers=HTMX)
    assert "hidden" in hidden.text and "Extra phone number" not in hidden.text


def test_details_without_htmx_render_the_page_expanded(client, setup):
    login(client, setup["user"].email)
    page = client.get(f"/billing/reserve/{setup['old'].id}")
    assert page.status_code == 200 and "<html" in page.text
    assert "Extra phone number × 1" in page.text


def test_other_accounts_and_unknown_grants_answer_404(client, db, setup):
    other = make_customer(db)
    theirs = make_grant(db, db.get(Account, other.account_id), amount_minor=100)
    db.commit()
    login(client, setup["user"].email)
    for grant_id in (theirs.id, 99999, "999999999999999999999999"):
        assert client.get(f"/billing/reserve/{grant_id}").status_code == 404
        assert client.get(f"/billing/reserve/{grant_id}", headers=HTMX).status_code == 404
    assert client.get("/billing/reserve/abc").status_code == 404


def test_expiry_job_records_the_expired_remainder_which_is_then_unusable(client, db, setup):
    account = setup["account"]
    ledger.expire_reserve(db)
    db.commit()
    reread(db)
    old = db.get(ReserveGrant, setup["old"].id)
    assert (old.status, old.expired_minor, old.remaining_minor) == (GrantStatus.EXPIRED, 300, 0)
    addon = make_addon(db, price_minor=1000)
    db.commit()
    purchase = plans.buy_addon(
        db, account=account, addon_id=addon.id, quantity=1, actor_user_id=None, idempotency_key="x"
    )
    assert (purchase.from_reserve_minor, purchase.from_balance_minor) == (800, 200)
    login(client, setup["user"].email)
    details = client.get(f"/billing/reserve/{old.id}", headers=HTMX)
    assert "£3.00 expired unused" in details.text
    reread(db)
    assert db.scalar(select(func.count(ReserveGrant.id))) == 2  # expired, not deleted
    assert db.get(ReserveGrant, setup["active"].id).status == GrantStatus.USED


def test_grant_status_shown(setup):
    now = utcnow()
    assert plans.grant_status(setup["active"], now) == "active"
    assert plans.grant_status(setup["old"], now) == "expired"
