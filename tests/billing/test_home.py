"""/billing, the customer's home: balance, available funds, the next invoice, automatic top-up
and the latest activity (a few rows, a link to the whole history)."""

from __future__ import annotations

import pytest

from portal import ledger
from portal.models import AutoRechargeSetting, BillingModel, EntryKind
from tests.billing.plan_helpers import HTMX, fund, make_plans, subscribe
from tests.builders import login, make_account, make_reseller, make_user


@pytest.fixture
def customer(app, db):
    reseller = make_reseller(db)
    account = make_account(
        db, reseller=reseller, model=BillingModel.POSTPAID, credit_limit_minor=5000
    )
    user = make_user(db, account=account)
    fund(db, account, 1234)
    db.commit()
    return user, account


def test_billing_is_the_home_page_with_the_figures(client, db, customer):
    user, account = customer
    login(client, user.email)
    for path in ("/billing", "/billing/"):
        page = client.get(path)
        assert page.status_code == 200 and "<html" in page.text
    assert 'id="home-balance">£12.34<' in page.text
    assert 'id="home-available">£62.34<' in page.text  # the balance plus the credit limit
    assert "including a credit limit of £50.00" in page.text
    assert 'id="home-auto-topup">Off<' in page.text
    assert 'id="home-next-invoice">–<' in page.text  # no subscription yet
    assert 'aria-current="page">Home<' in page.text  # in the navigation


def test_htmx_gets_the_fragment(client, customer):
    login(client, customer[0].email)
    fragment = client.get("/billing", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="home"' in fragment.text


def test_latest_activity_shows_five_rows_and_links_to_the_history(client, db, customer):
    user, account = customer
    for i in range(7):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.USAGE,
            amount_minor=-(i + 1),
            description=f"Call number {i}",
            idempotency_key=f"call-{i}",
        )
    db.commit()
    login(client, user.email)
    text = client.get("/billing").text
    rows = text.split('id="latest-rows"')[1].split("</tbody>")[0]
    assert rows.count("<tr>") == 5
    assert "Call number 6" in rows and "Call number 1" not in rows  # newest first
    assert 'href="/billing/balance#history"' in text


def test_automatic_top_up_on_and_the_next_invoice(client, db, customer):
    user, account = customer
    db.add(
        AutoRechargeSetting(
            account_id=account.id, enabled=True, threshold_minor=500, amount_minor=2000
        )
    )
    plans = make_plans(db)
    subscribe(db, account, plans["Starter"])
    db.commit()
    login(client, user.email)
    text = client.get("/billing").text
    assert 'id="home-auto-topup">On<' in text
    assert "£20.00 when funds fall to £5.00" in text
    assert 'id="home-next-invoice">£' in text and "so far, for" in text


def test_an_admin_is_refused(client, db, customer):
    from portal.models import Role

    reseller = make_reseller(db)
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller)
    db.commit()
    login(client, admin.email)
    assert client.get("/billing").status_code == 403
