"""The audit log, readable: human field names, money formatted, before -> after per field;
filters by who, what and when; CSV export (formula-neutralised); tenant-scoped."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from portal import audit
from portal.audit_log import changes
from portal.models import utcnow
from tests.admin.helpers import make_tenant
from tests.billing.plan_helpers import HTMX
from tests.builders import login


@pytest.fixture
def world(app, db):
    acme = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    beta = make_tenant(db, name="Beta", admin_email="admin@beta.test")
    audit.record(
        db,
        actor_user_id=acme.admin.id,
        reseller_id=acme.reseller.id,
        action="credit.limit",
        object_type="account",
        object_id=acme.postpaid.id,
        before={"credit_limit_minor": 20000, "temp_increase_minor": None},
        after={"credit_limit_minor": 25050, "temp_increase_minor": None},
    )
    audit.record(
        db,
        actor_user_id=acme.admin.id,
        reseller_id=acme.reseller.id,
        action="customer.update",
        object_type="account",
        object_id=acme.prepaid.id,
        before={"name": "Old name", "status": "active"},
        after={"name": '=HYPERLINK("http://x")', "status": "active"},
    )
    old = audit.record(
        db,
        actor_user_id=None,
        reseller_id=acme.reseller.id,
        action="payment.dispute_created",
        object_type="payment",
        object_id=7,
        before={"disputed": False},
        after={"disputed": True, "reason": "fraudulent"},
    )
    audit.record(
        db,
        actor_user_id=beta.admin.id,
        reseller_id=beta.reseller.id,
        action="credit.limit",
        object_type="account",
        object_id=beta.postpaid.id,
        before={"credit_limit_minor": 1},
        after={"credit_limit_minor": 99999},
    )
    db.flush()
    old.created_at = utcnow() - timedelta(days=10)
    db.commit()
    return acme, beta


def test_fields_are_labelled_money_formatted_before_and_after(client, world):
    login(client, "admin@acme.test")
    html = client.get("/admin/audit-log").text
    assert "<dt>Credit limit</dt><dd><del>£200.00</del> → <ins>£250.50</ins></dd>" in html
    assert "25050" not in html and "credit_limit_minor" not in html
    assert "Temporary increase" not in html  # unchanged fields are not listed
    assert "<dt>Name</dt><dd><del>Old name</del> → <ins>" in html
    assert "<dt>Disputed</dt><dd><del>No</del> → <ins>Yes</ins></dd>" in html
    assert "Credit limit changed" in html and "Dispute opened" in html
    assert "£999.99" not in html  # Beta's row is not Acme's


def test_filters_who_what_when(client, world):
    login(client, "admin@acme.test")
    by_action = client.get("/admin/audit-log?action=credit.", headers=HTMX).text
    assert by_action.startswith('<div id="audit-table">')
    assert "Credit limit changed" in by_action and "Customer changed" not in by_action
    system = client.get("/admin/audit-log?who=system").text
    assert "Dispute opened" in system and "Customer changed" not in system
    person = client.get("/admin/audit-log?who=admin@acme").text
    assert "Customer changed" in person and "Dispute opened" not in person
    today = utcnow().date().isoformat()
    recent = client.get(f"/admin/audit-log?date_from={today}").text
    assert "Customer changed" in recent and "Dispute opened" not in recent
    nobody = client.get("/admin/audit-log?who=nobody%25_").text
    assert "No audit entries match." in nobody


def test_a_bad_date_range_says_so_and_shows_everything(client, world):
    login(client, "admin@acme.test")
    response = client.get("/admin/audit-log?date_from=2026-05-02&date_to=2026-05-01")
    assert response.status_code == 200
    assert "The end date is before the start date." in response.text
    assert "Dispute opened" in response.text
    csv_answer = client.get("/admin/audit-log.csv?date_from=2026-05-02&date_to=2026-05-01")
    assert csv_answer.status_code == 400
    assert client.get("/admin/audit-log?date_from=nonsense").status_code == 200


def test_csv_is_filtered_readable_neutralised_and_scoped(client, world):
    login(client, "admin@acme.test")
    page = client.get("/admin/audit-log?action=customer").text
    assert 'href="/admin/audit-log.csv?action=customer"' in page
    answer = client.get("/admin/audit-log.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0][:4] == ["When (UTC)", "Who", "IP address", "What"]
    limit = next(r for r in rows if r[6] == "Credit limit")
    assert limit[7:] == ["£200.00", "£250.50"] and limit[1] == "admin@acme.test"
    name = next(r for r in rows if r[6] == "Name")
    assert name[8] == '\'=HYPERLINK("http://x")'  # never a formula in a spreadsheet
    assert "£999.99" not in answer.text  # another tenant's rows
    only = list(csv.reader(io.StringIO(client.get("/admin/audit-log.csv?action=payment").text)))
    assert {r[4] for r in only[1:]} == {"payment.dispute_created"}


def test_the_operator_sees_every_tenant(client, db, world):
    from portal.models import Role
    from tests.builders import make_user

    make_user(db, role=Role.OPERATOR, email="op@audit.test")
    db.commit()
    login(client, "op@audit.test")
    html = client.get("/admin/audit-log?action=credit").text
    assert "£250.50" in html and "£999.99" in html


def test_changes_without_currency_are_never_raw_pence():
    assert changes({"amount_minor": 1250}, {"amount_minor": 2500}, None)[0].after == "25.00"
    created = changes(None, {"amount_minor": 500, "currency": "EUR"}, None)[0]
    assert (created.before, created.after) == ("", "€5.00")
    assert changes({"a": [1]}, {"a": [1]}, "GBP") == []
