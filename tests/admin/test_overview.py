"""The admin overview: counts, top-ups and redemptions per day (SVG), customers near their
credit limits; a reseller admin sees only their own customers, the operator everyone."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal import ledger
from portal.charts import bar_chart
from portal.models import EntryKind, Role
from tests.admin.helpers import make_tenant
from tests.billing.plan_helpers import HTMX
from tests.builders import login, make_user


def _post(db, account, kind, amount, key):
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=kind,
        amount_minor=amount,
        description=f"{kind.value} {key}",
        idempotency_key=key,
    )


@pytest.fixture
def world(app, db):
    acme = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    beta = make_tenant(db, name="Beta", admin_email="admin@beta.test")
    operator = make_user(db, role=Role.OPERATOR, email="operator@overview.test")
    acme.postpaid.name, beta.postpaid.name = "Acme Near", "Beta Near"
    # Acme: 2 top-ups, 1 automatic top-up, 1 redemption; its postpaid customer has used 90%.
    _post(db, acme.prepaid, EntryKind.TOPUP, 1000, "a1")
    _post(db, acme.prepaid, EntryKind.TOPUP, 500, "a2")
    _post(db, acme.prepaid, EntryKind.AUTO_RECHARGE, 500, "a3")
    _post(db, acme.prepaid, EntryKind.VOUCHER, 500, "a4")
    _post(db, acme.postpaid, EntryKind.USAGE, -18000, "a5")
    # Beta: 1 top-up, 2 redemptions; its postpaid customer has used 50% (not near).
    _post(db, beta.prepaid, EntryKind.TOPUP, 1000, "b1")
    _post(db, beta.prepaid, EntryKind.VOUCHER, 500, "b2")
    _post(db, beta.prepaid, EntryKind.VOUCHER, 500, "b3")
    _post(db, beta.postpaid, EntryKind.USAGE, -10000, "b4")
    db.commit()
    return acme, beta, operator


def test_reseller_admin_sees_only_their_customers(client, world):
    acme, beta, _ = world
    login(client, "admin@acme.test")
    page = client.get("/admin/")
    assert page.status_code == 200 and "<html" in page.text
    assert 'id="topups-total">3<' in page.text
    assert 'id="redemptions-total">1<' in page.text
    assert "Acme Near" in page.text and "90%" in page.text
    assert "Beta Near" not in page.text
    assert page.text.count('<svg viewBox="0 0 640 160" role="img"') == 2


def test_the_operator_sees_every_reseller(client, world):
    _, beta, _ = world
    login(client, "operator@overview.test")
    page = client.get("/admin/").text
    assert 'id="topups-total">4<' in page
    assert 'id="redemptions-total">3<' in page
    assert "Acme Near" in page and "Beta Near" not in page  # Beta's customer used only 50%


def test_no_customer_near_the_limit_says_so(client, db, world):
    _, beta, _ = world
    login(client, "admin@beta.test")
    page = client.get("/admin/").text
    assert 'id="near-limit-none"' in page and "Acme Near" not in page
    assert 'id="topups-total">1<' in page and 'id="redemptions-total">2<' in page


def test_htmx_gets_the_fragment(client, world):
    login(client, "admin@acme.test")
    fragment = client.get("/admin/", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="overview"' in fragment.text


def test_a_customer_is_refused(client, db, world):
    acme, _, _ = world
    user = make_user(db, account=acme.prepaid)
    db.commit()
    login(client, user.email)
    assert client.get("/admin/").status_code == 403


def test_bar_chart_scales_bars_and_labels_the_last_day_at_the_end():
    start = date(2026, 1, 1)
    chart = bar_chart([(start + timedelta(days=i), v) for i, v in enumerate([0, 2, 4] * 10)])
    heights = [bar[3] for bar in chart.bars]
    assert heights[0] == 0 and heights[2] == max(heights) == 2 * heights[1]
    assert chart.x_labels[-1][1:] == ("30 Jan", "end")
    assert chart.y_labels[-1][1] == 4
    xs = [x for x, _, _ in chart.x_labels]
    assert xs == sorted(xs) and all(b - a >= 40 for a, b in zip(xs, xs[1:], strict=False))
