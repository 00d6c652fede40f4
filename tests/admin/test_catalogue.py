"""Customer classes, the operator's catalogue, settings and the audit log page."""

import pytest
from sqlalchemy import select

from portal.models import (
    AccountAddOn,
    AddOn,
    AuditLog,
    CustomerClass,
    Plan,
    PlanLicense,
    Reseller,
    Role,
    ServerSetting,
    Subscription,
    TopupProduct,
    User,
)
from tests.admin.helpers import make_tenant, reload
from tests.builders import login, make_user


@pytest.fixture
def acme(db):
    tenant = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    db.commit()
    return tenant


@pytest.fixture
def beta(db):
    tenant = make_tenant(db, name="Beta", admin_email="admin@beta.test")
    db.commit()
    return tenant


@pytest.fixture
def operator(client, db, acme):
    make_user(db, role=Role.OPERATOR, email="op@example.test")
    db.commit()
    login(client, "op@example.test")
    return client


@pytest.fixture
def plan(db):
    item = Plan(name="Basic", price_minor=1000, currency="GBP")
    db.add(item)
    db.commit()
    return item


def audit_actions(db):
    return [row.action for row in db.scalars(select(AuditLog).order_by(AuditLog.id))]


# --- customer classes ------------------------------------------------------------------------


def class_data(reseller, **changes):
    data = {
        "reseller_id": reseller.id,
        "name": "Gold",
        "transfers_allowed": "y",
        "max_increase": "250.00",
        "max_increase_percent": "20",
        "max_increase_days": "14",
        "default_warning_thresholds": "50%, 10",
    }
    data.update(changes)
    return data


def test_reseller_admin_creates_class_for_own_reseller(client, db, acme):
    login(client, "admin@acme.test")
    response = client.post("/admin/customer-classes", data=class_data(acme.reseller))
    assert response.status_code == 303
    reload(db)
    klass = db.scalar(select(CustomerClass).where(CustomerClass.name == "Gold"))
    assert klass.reseller_id == acme.reseller.id
    assert (klass.max_increase_minor, klass.max_increase_percent, klass.max_increase_days) == (
        25000,
        20,
        14,
    )
    assert klass.transfers_allowed is True
    assert "customer_class.create" in audit_actions(db)
    html = client.get("/admin/customer-classes").get_data(as_text=True)
    assert "£250.00 / 20%" in html and "14 days" in html


def test_blank_maximum_means_none(client, db, acme):
    login(client, "admin@acme.test")
    data = class_data(acme.reseller, max_increase="", max_increase_percent="", max_increase_days="")
    assert client.post("/admin/customer-classes", data=data).status_code == 303
    reload(db)
    klass = db.scalar(select(CustomerClass).where(CustomerClass.name == "Gold"))
    assert klass.max_increase_minor is None and klass.max_increase_days is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"max_increase": "-1"}, "Enter a positive amount."),
        ({"max_increase": "NaN"}, "Enter a plain number"),
        ({"max_increase": "1.001"}, "Use at most 2 decimals"),
        ({"max_increase_percent": "5000"}, "Number must be between 0 and 1000."),
        ({"max_increase_days": "0"}, "Number must be between 1 and 3650."),
        ({"max_increase_days": "abc"}, "Not a valid integer value."),
        ({"default_warning_thresholds": "abc"}, "&#39;abc&#39; is not an amount"),
        ({"default_warning_thresholds": ",".join(["1"] * 11)}, "at most 10 thresholds"),
    ],
)
def test_bad_class_input_refused(client, db, acme, changes, message):
    login(client, "admin@acme.test")
    response = client.post("/admin/customer-classes", data=class_data(acme.reseller, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    reload(db)
    assert db.scalar(select(CustomerClass).where(CustomerClass.name == "Gold")) is None


def test_duplicate_class_name_and_foreign_reseller_refused(client, db, acme, beta):
    login(client, "admin@acme.test")
    response = client.post(
        "/admin/customer-classes", data=class_data(acme.reseller, name=acme.klass.name)
    )
    assert "already has a class of this name" in response.get_data(as_text=True)
    response = client.post("/admin/customer-classes", data=class_data(beta.reseller))
    assert response.status_code == 422  # not one of the admin's choices
    reload(db)
    assert db.scalar(select(CustomerClass).where(CustomerClass.name == "Gold")) is None


def test_a_non_ascii_duplicate_class_name_is_refused_not_a_500(client, db, acme):
    # SQLite's lower() folds ASCII only: the case-insensitive check alone missed "ÉCLAIR".
    login(client, "admin@acme.test")
    data = class_data(acme.reseller, name="ÉCLAIR")
    assert client.post("/admin/customer-classes", data=data).status_code == 303
    again = client.post("/admin/customer-classes", data=data)
    assert again.status_code == 422
    assert "already has a class of this name" in again.get_data(as_text=True)


def test_edit_class_and_foreign_class_is_404(client, db, acme, beta):
    login(client, "admin@acme.test")
    html = client.get(f"/admin/customer-classes/{acme.klass.id}").get_data(as_text=True)
    assert 'value="500.00"' in html
    response = client.post(
        f"/admin/customer-classes/{acme.klass.id}",
        data=class_data(acme.reseller, name="Renamed", max_increase="75"),
    )
    assert response.status_code == 303
    reload(db)
    assert db.get(CustomerClass, acme.klass.id).max_increase_minor == 7500
    assert client.get(f"/admin/customer-classes/{beta.klass.id}").status_code == 404
    assert client.post(f"/admin/customer-classes/{beta.klass.id}/delete").status_code == 404


def test_delete_class_in_use_refused_then_allowed(client, db, acme):
    login(client, "admin@acme.test")
    response = client.post(f"/admin/customer-classes/{acme.klass.id}/delete", follow_redirects=True)
    assert "cannot be deleted: customer accounts belong to this class" in response.get_data(
        as_text=True
    )
    reload(db)
    assert db.get(CustomerClass, acme.klass.id) is not None
    for account in (acme.postpaid, acme.prepaid):
        db.get(type(account), account.id).customer_class_id = None
    db.commit()
    assert client.post(f"/admin/customer-classes/{acme.klass.id}/delete").status_code == 303
    reload(db)
    assert db.get(CustomerClass, acme.klass.id) is None
    assert "customer_class.delete" in audit_actions(db)


# --- operator-only pages --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/admin/resellers",
        "/admin/plans",
        "/admin/addons",
        "/admin/topup-products",
        "/admin/settings",
    ],
)
def test_operator_pages_refused_to_reseller_admins(client, acme, url):
    login(client, "admin@acme.test")
    assert client.get(url).status_code == 403
    assert client.post(url, data={}).status_code == 403


def test_reseller_crud_and_admin_creation(operator, db, acme):
    assert (
        operator.post(
            "/admin/resellers", data={"name": "Gamma", "currency_code": "EUR"}
        ).status_code
        == 303
    )
    reload(db)
    gamma = db.scalar(select(Reseller).where(Reseller.name == "Gamma"))
    assert gamma.currency == "EUR"
    response = operator.post("/admin/resellers", data={"name": "gamma", "currency_code": "EUR"})
    assert "already exists" in response.get_data(as_text=True)
    response = operator.post(
        f"/admin/resellers/{gamma.id}/admins",
        data={"email": "boss@gamma.test", "name": "Boss", "password": "gamma-password"},
    )
    assert response.status_code == 303
    reload(db)
    admin = db.scalar(select(User).where(User.email == "boss@gamma.test"))
    assert (admin.role, admin.reseller_id) == (Role.RESELLER_ADMIN, gamma.id)
    assert "gamma-password" not in admin.password_hash
    response = operator.post(
        f"/admin/resellers/{gamma.id}/admins", data={"email": "x@gamma.test", "password": "short"}
    )
    assert "at least 10 characters" in response.get_data(as_text=True)
    # Gamma has a user now, so it cannot be deleted.
    response = operator.post(f"/admin/resellers/{gamma.id}/delete", follow_redirects=True)
    assert "cannot be deleted: it still has users" in response.get_data(as_text=True)
    reload(db)
    assert db.get(Reseller, gamma.id) is not None
    assert {"reseller.create", "reseller_admin.create"} <= set(audit_actions(db))


def test_a_non_ascii_reseller_name_twice_is_refused_not_a_500(operator, db):
    # SQLite's lower() leaves "Ë" alone; the hostile-input fuzzer found the 500 this caused.
    for name in ("Ëf Telecom", "Ëf Telecom", "ëf telecom"):
        response = operator.post("/admin/resellers", data={"name": name, "currency_code": "GBP"})
        assert response.status_code in (303, 422)
    reload(db)
    names = db.scalars(select(Reseller.name).where(Reseller.name.like("%f Telecom"))).all()
    assert names == ["Ëf Telecom"]
    assert "already exists" in response.get_data(as_text=True)


def test_unused_reseller_can_be_deleted(operator, db):
    empty = Reseller(name="Empty", currency="GBP")
    db.add(empty)
    db.commit()
    assert operator.post(f"/admin/resellers/{empty.id}/delete").status_code == 303
    reload(db)
    assert db.get(Reseller, empty.id) is None


def test_plan_crud_with_licenses(operator, db):
    response = operator.post(
        "/admin/plans",
        data={
            "name": "Pro",
            "price": "25.00",
            "currency_code": "GBP",
            "sort_order": "1",
            "active": "y",
        },
    )
    assert response.status_code == 303
    reload(db)
    plan = db.scalar(select(Plan).where(Plan.name == "Pro"))
    assert plan.price_minor == 2500
    url = f"/admin/plans/{plan.id}/licenses"
    data = {"service": "extensions", "label": "Extensions", "limit": "10"}
    assert operator.post(url, data=data).status_code == 303
    response = operator.post(url, data=data)
    assert "already has a license for it" in response.get_data(as_text=True)
    response = operator.post(url, data={**data, "service": "Bad Key!", "limit": "-1"})
    assert response.status_code == 422
    reload(db)
    [lic] = db.scalars(select(PlanLicense).where(PlanLicense.plan_id == plan.id)).all()
    assert lic.limit == 10
    html = operator.get(f"/admin/plans/{plan.id}").get_data(as_text=True)
    assert 'value="25.00"' in html and "Extensions" in html
    assert operator.post(f"/admin/plans/{plan.id}/licenses/{lic.id}/delete").status_code == 303
    assert operator.post(f"/admin/plans/{plan.id}/licenses/999/delete").status_code == 404


@pytest.mark.parametrize("price", ["-1", "NaN", "1.234", "1e9", "99999999999", ""])
def test_bad_plan_price_refused(operator, db, price):
    response = operator.post(
        "/admin/plans", data={"name": "Bad", "price": price, "currency_code": "GBP"}
    )
    assert response.status_code == 422
    reload(db)
    assert db.scalar(select(Plan).where(Plan.name == "Bad")) is None


def test_delete_plan_in_use_refused(operator, db, acme, plan):
    from datetime import date

    db.add(
        Subscription(
            account_id=acme.prepaid.id, plan_id=plan.id, anchor_day=1, started_on=date.today()
        )
    )
    db.commit()
    response = operator.post(f"/admin/plans/{plan.id}/delete", follow_redirects=True)
    assert "cannot be deleted: customers subscribe to this plan" in response.get_data(as_text=True)
    reload(db)
    assert db.get(Plan, plan.id) is not None


def test_delete_unused_plan(operator, db, plan):
    assert operator.post(f"/admin/plans/{plan.id}/delete").status_code == 303
    reload(db)
    assert db.get(Plan, plan.id) is None
    assert "plan.delete" in audit_actions(db)


def test_addon_crud_and_delete_in_use_refused(operator, db, acme):
    data = {
        "service": "extensions",
        "label": "5 more",
        "units": "5",
        "price": "5.00",
        "currency_code": "GBP",
        "active": "y",
    }
    assert operator.post("/admin/addons", data=data).status_code == 303
    reload(db)
    addon = db.scalar(select(AddOn))
    assert (addon.units, addon.price_minor) == (5, 500)
    assert (
        operator.post(f"/admin/addons/{addon.id}", data={**data, "price": "6.00"}).status_code
        == 303
    )
    assert operator.post("/admin/addons", data={**data, "units": "0"}).status_code == 422
    reload(db)
    db.add(
        AccountAddOn(
            account_id=acme.prepaid.id, addon_id=addon.id, quantity=1, price_paid_minor=600
        )
    )
    db.commit()
    response = operator.post(f"/admin/addons/{addon.id}/delete", follow_redirects=True)
    assert "customers have bought this add-on" in response.get_data(as_text=True)
    reload(db)
    assert db.get(AddOn, addon.id).price_minor == 600


def test_topup_product_crud(operator, db):
    data = {"label": "£15", "amount": "15", "currency_code": "GBP", "active": "y"}
    assert operator.post("/admin/topup-products", data=data).status_code == 303
    for bad in ("0", "-5", "abc", "1.999"):
        assert (
            operator.post("/admin/topup-products", data={**data, "amount": bad}).status_code == 422
        )
    reload(db)
    product = db.scalars(select(TopupProduct)).one()
    assert product.amount_minor == 1500
    assert operator.post(f"/admin/topup-products/{product.id}/delete").status_code == 303
    reload(db)
    assert db.scalars(select(TopupProduct)).all() == []


# --- settings ---------------------------------------------------------------------------------


def setting(db, key):
    return db.scalar(select(ServerSetting.value).where(ServerSetting.key == key))


def test_settings_saved_as_basis_points(operator, db):
    html = operator.get("/admin/settings").get_data(as_text=True)
    assert "Server default currency" in html and 'value="20.00"' in html
    response = operator.post(
        "/admin/settings", data={"default_currency": "EUR", "tax_rate": "17.5"}
    )
    assert response.status_code == 303
    reload(db)
    assert setting(db, "default_currency") == "EUR"
    assert setting(db, "tax_rate_bp") == "1750"
    assert "settings.update" in audit_actions(db)


def test_payment_terms_and_reminder_days_are_settings(operator, db):
    html = operator.get("/admin/settings").get_data(as_text=True)
    assert "Payment terms (days from the invoice to its due date)" in html
    assert 'value="14"' in html and 'value="1, 7, 14"' in html
    data = {"default_currency": "GBP", "tax_rate": "20", "invoice_net_days": "30"}
    response = operator.post("/admin/settings", data={**data, "invoice_reminder_days": "10, 3"})
    assert response.status_code == 303
    reload(db)
    assert (setting(db, "invoice_net_days"), setting(db, "invoice_reminder_days")) == (
        "30",
        "3, 10",
    )
    for bad in ("0", "x", "1, 400", "²"):
        refused = operator.post("/admin/settings", data={**data, "invoice_reminder_days": bad})
        assert refused.status_code == 422 and "whole numbers of days" in refused.text
    refused = operator.post("/admin/settings", data={**data, "invoice_net_days": "400"})
    assert refused.status_code == 422 and "Enter 0 to 365 days." in refused.text
    reload(db)
    assert setting(db, "invoice_reminder_days") == "3, 10"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default_currency": "XXX", "tax_rate": "20"}, "Not a valid choice"),
        ({"default_currency": "GBP", "tax_rate": "20.123"}, "at most 2 decimals"),
        ({"default_currency": "GBP", "tax_rate": "-1"}, "Enter a percentage"),
        ({"default_currency": "GBP", "tax_rate": "NaN"}, "Enter a percentage"),
        ({"default_currency": "GBP", "tax_rate": "101"}, "cannot be above 100%"),
        ({"default_currency": "GBP", "tax_rate": ""}, "This field is required."),
        ({"default_currency": "GBP", "tax_rate": "1e2"}, "Enter a percentage"),
    ],
)
def test_bad_settings_refused(operator, db, data, message):
    response = operator.post("/admin/settings", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    reload(db)
    assert setting(db, "tax_rate_bp") is None


# --- audit log page ---------------------------------------------------------------------------


def test_audit_log_is_tenant_scoped(client, db, acme, beta):
    from portal import audit

    audit.record(
        db,
        actor_user_id=acme.admin.id,
        reseller_id=acme.reseller.id,
        action="credit.x",
        object_type="account",
        object_id=1,
        before={"a": 1},
        after={"a": 2},
    )
    audit.record(
        db,
        actor_user_id=beta.admin.id,
        reseller_id=beta.reseller.id,
        action="credit.secret",
        object_type="account",
        object_id=2,
    )
    db.commit()
    login(client, "admin@acme.test")
    html = client.get("/admin/audit-log").get_data(as_text=True)
    assert "credit.x" in html and "admin@acme.test" in html
    assert "<dt>A</dt><dd><del>1</del> → <ins>2</ins></dd>" in html
    assert "credit.secret" not in html
    fragment = client.get("/admin/audit-log?action=nothing", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).startswith('<div id="audit-table">')
    assert "credit.x" not in fragment.get_data(as_text=True)
    assert client.get("/admin/audit-log?before=abc&action=%25_").status_code == 200
