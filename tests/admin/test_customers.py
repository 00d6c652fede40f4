"""Customers list, create/edit, users and the Balance & Credits tab through the test client."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from portal.models import (
    Account,
    AccountStatus,
    AuditLog,
    BillingModel,
    CreditLimitChange,
    EntryKind,
    LedgerEntry,
    TransferSetting,
    User,
    utcnow,
)
from tests.admin.helpers import make_tenant, reload
from tests.builders import login

HX = {"HX-Request": "true"}


@pytest.fixture
def acme(db):
    tenant = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    tenant.postpaid.name = "Bob Postpaid"
    tenant.postpaid.email = "bob@shop.test"
    tenant.prepaid.name = "Alice Prepaid"
    db.commit()
    return tenant


@pytest.fixture
def beta(db):
    tenant = make_tenant(db, name="Beta", admin_email="admin@beta.test")
    tenant.prepaid.name = "Carol Beta"
    db.commit()
    return tenant


@pytest.fixture
def admin(client, acme):
    login(client, "admin@acme.test")
    return client


def balance_url(account, action=""):
    return f"/admin/customers/{account.id}/balance" + (f"/{action}" if action else "")


# --- list and search ---------------------------------------------------------------------


def test_list_shows_only_own_customers_with_columns(admin, acme, beta):
    html = admin.get("/admin/customers").get_data(as_text=True)
    assert "Bob Postpaid" in html and "Alice Prepaid" in html
    assert "Carol Beta" not in html
    for heading in ("Balance", "Available funds", "Model", "Plan", "Status"):
        assert f"<th>{heading}</th>" in html or f'<th class="money">{heading}</th>' in html
    assert "£200.00" in html  # Bob's available funds (credit limit)


@pytest.mark.parametrize("query", ["bob", "BOB@SHOP", "Postpaid"])
def test_search_by_name_email_number(admin, acme, query):
    html = admin.get(f"/admin/customers?q={query}").get_data(as_text=True)
    assert "Bob Postpaid" in html and "Alice Prepaid" not in html


def test_search_by_account_number_and_htmx_fragment(admin, acme):
    response = admin.get(f"/admin/customers?q={acme.prepaid.number}", headers=HX)
    html = response.get_data(as_text=True)
    assert html.startswith('<div id="customer-results">')
    assert "Alice Prepaid" in html and "Bob Postpaid" not in html


def test_silly_search_input_is_harmless(admin, acme):
    for query in ["%", "_", "x" * 500, "' or 1=1 --", "\x00"]:
        assert (
            admin.get("/admin/customers", query_string={"q": query, "page": "-3"}).status_code
            == 200
        )


def test_operator_sees_all_and_filters_by_reseller(client, db, acme, beta):
    from portal.models import Role
    from tests.builders import make_user

    make_user(db, role=Role.OPERATOR, email="op@example.test")
    db.commit()
    login(client, "op@example.test")
    html = client.get("/admin/customers").get_data(as_text=True)
    assert "Carol Beta" in html and "Bob Postpaid" in html
    html = client.get(f"/admin/customers?reseller={beta.reseller.id}").get_data(as_text=True)
    assert "Carol Beta" in html and "Bob Postpaid" not in html


# --- create and edit ---------------------------------------------------------------------


def test_create_postpaid_customer(admin, db, acme):
    response = admin.post(
        "/admin/customers/new",
        data={
            "reseller_id": acme.reseller.id,
            "number": "555001",
            "name": "New Co",
            "email": "New@Co.test",
            "currency_code": "GBP",
            "billing_model": "postpaid",
            "customer_class_id": acme.klass.id,
            "credit_limit": "150.00",
        },
    )
    assert response.status_code == 303
    reload(db)
    account = db.scalar(select(Account).where(Account.number == "555001"))
    assert account.reseller_id == acme.reseller.id
    assert account.billing_model == BillingModel.POSTPAID
    assert account.credit_limit_minor == 15000
    assert account.email == "new@co.test"
    assert db.scalar(select(CreditLimitChange).where(CreditLimitChange.account_id == account.id))
    assert db.scalar(select(AuditLog).where(AuditLog.action == "customer.create"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": ""}, "This field is required."),
        ({"number": "has space"}, "Use 1-32 letters, digits or dashes."),
        ({"name": ""}, "This field is required."),
        ({"email": "nope"}, "Enter an email address"),
        ({"credit_limit": "-5"}, "Enter a positive amount."),
        ({"credit_limit": "NaN"}, "Enter a plain number"),
        ({"credit_limit": "1.234"}, "Use at most 2 decimals"),
        ({"credit_limit": "1e99"}, "Enter a plain number"),
        ({"billing_model": "prepaid", "credit_limit": "10"}, "only for postpaid"),
        ({"currency_code": "XXX"}, "Not a valid choice"),
    ],
)
def test_create_customer_bad_input(admin, db, acme, changes, message):
    data = {
        "reseller_id": acme.reseller.id,
        "number": "555002",
        "name": "Bad Co",
        "currency_code": "GBP",
        "billing_model": "postpaid",
        "credit_limit": "0",
        **changes,
    }
    response = admin.post("/admin/customers/new", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    reload(db)
    assert db.scalar(select(Account).where(Account.name == "Bad Co")) is None


def test_create_with_taken_number_or_foreign_class_refused(admin, db, acme, beta):
    base = {
        "reseller_id": acme.reseller.id,
        "name": "Dup",
        "currency_code": "GBP",
        "billing_model": "prepaid",
        "credit_limit": "0",
    }
    response = admin.post("/admin/customers/new", data={**base, "number": acme.prepaid.number})
    assert "already taken" in response.get_data(as_text=True)
    response = admin.post(
        "/admin/customers/new", data={**base, "number": "777", "customer_class_id": beta.klass.id}
    )
    assert response.status_code == 422
    # A reseller admin cannot create customers for another reseller.
    response = admin.post(
        "/admin/customers/new", data={**base, "number": "778", "reseller_id": beta.reseller.id}
    )
    assert response.status_code in (404, 422)
    reload(db)
    assert db.scalar(select(Account).where(Account.name == "Dup")) is None


def test_edit_customer(admin, db, acme):
    response = admin.post(
        f"/admin/customers/{acme.prepaid.id}/edit",
        data={"name": "Alice Renamed", "email": "", "status": "suspended", "customer_class_id": ""},
    )
    assert response.status_code == 303
    reload(db)
    account = db.get(Account, acme.prepaid.id)
    assert account.name == "Alice Renamed"
    assert account.status == AccountStatus.SUSPENDED
    assert account.customer_class_id is None
    row = db.scalar(select(AuditLog).where(AuditLog.action == "customer.update"))
    assert '"name": "Alice Prepaid"' in row.before and '"name": "Alice Renamed"' in row.after


def test_edit_page_prefilled(admin, acme):
    html = admin.get(f"/admin/customers/{acme.prepaid.id}/edit").get_data(as_text=True)
    assert 'value="Alice Prepaid"' in html
    assert '<label for="status">Status</label>' in html


# --- users --------------------------------------------------------------------------------


def test_add_user_with_hashed_password_and_voucher_permission(admin, db, acme):
    response = admin.post(
        f"/admin/customers/{acme.prepaid.id}/users/new",
        data={"email": "clerk@shop.test", "name": "Clerk", "password": "long-enough-pw"},
    )
    assert response.status_code == 303
    reload(db)
    user = db.scalar(select(User).where(User.email == "clerk@shop.test"))
    assert user.account_id == acme.prepaid.id and user.reseller_id == acme.reseller.id
    assert user.can_redeem_vouchers is False  # unchecked box
    assert user.password_hash != "long-enough-pw"
    assert check_password_hash(user.password_hash, "long-enough-pw")
    html = admin.get(f"/admin/customers/{acme.prepaid.id}").get_data(as_text=True)
    assert "clerk@shop.test" in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "bad", "password": "long-enough-pw"}, "Enter an email address"),
        ({"email": "admin@acme.test", "password": "long-enough-pw"}, "already exists"),
        ({"email": "x@y.test", "password": "short"}, "at least 10 characters"),
    ],
)
def test_add_user_bad_input(admin, db, acme, data, message):
    response = admin.post(f"/admin/customers/{acme.prepaid.id}/users/new", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    reload(db)
    assert db.scalar(select(User).where(User.email == "x@y.test")) is None


def test_edit_user_permission_and_password(admin, db, acme):
    from tests.builders import make_user

    user = make_user(db, account=acme.prepaid, email="u@shop.test")
    db.commit()
    old_nonce = user.session_nonce
    response = admin.post(
        f"/admin/customers/{acme.prepaid.id}/users/{user.id}",
        data={"name": "U", "can_redeem_vouchers": "y", "active": "y", "password": "new-password-1"},
    )
    assert response.status_code == 303
    reload(db)
    user = db.get(User, user.id)
    assert user.can_redeem_vouchers is True
    assert check_password_hash(user.password_hash, "new-password-1")
    assert user.session_nonce != old_nonce


def test_user_of_another_account_is_404(admin, db, acme, beta):
    from tests.builders import make_user

    foreign = make_user(db, account=beta.prepaid, email="f@beta.test")
    own_other = make_user(db, account=acme.postpaid, email="o@acme.test")
    db.commit()
    assert admin.get(f"/admin/customers/{acme.prepaid.id}/users/{foreign.id}").status_code == 404
    assert admin.get(f"/admin/customers/{acme.prepaid.id}/users/{own_other.id}").status_code == 404


# --- Balance & Credits tab ------------------------------------------------------------------


def test_balance_tab_postpaid_shows_seed_fields(admin, acme):
    html = admin.get(balance_url(acme.postpaid)).get_data(as_text=True)
    for text in (
        "Permanent Credit Limit",
        "Temporary Credit Limit Increase",
        "Valid Until",
        "Maximum possible increase: £100.00",
        "Credit Limit Warning Threshold",
        "Unallocated Payments",
        "Credit Limit History",
        "Subscriber-to-Subscriber transfers allowed",
        "As defined by the customer class",
        "Order number",
        "Reason",
    ):
        assert text in html, text


def test_balance_tab_prepaid_hides_postpaid_only_parts(admin, acme):
    html = admin.get(balance_url(acme.prepaid)).get_data(as_text=True)
    assert "Low Funds Warning Threshold" in html
    assert "Temporary Credit Limit Increase" not in html
    assert "Credit Limit History" not in html


def test_set_temporary_increase_by_percent_via_htmx(admin, db, acme):
    until = (utcnow() + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    response = admin.post(
        balance_url(acme.postpaid, "temporary-increase"),
        data={"increase": "25%", "valid_until": until},
        headers=HX,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.strip().startswith('<div id="balance-tab"')
    assert "£250.00" in html  # available funds now
    assert "Temporary Credit Limit Increase saved." in html  # toast
    reload(db)
    account = db.get(Account, acme.postpaid.id)
    assert account.temp_increase_percent == 25
    assert account.temp_increase_valid_until.strftime("%Y-%m-%dT%H:%M") == until


@pytest.mark.parametrize(
    ("increase", "days", "message"),
    [
        ("101.00", 5, "The increase is above the maximum."),
        ("60%", 5, "The increase is above the maximum."),
        ("10.00", 40, "Valid Until is too far away."),
        ("10.00", -1, "Valid Until must be in the future."),
        ("abc", 5, "Enter a plain number"),
        ("-5", 5, "Enter a positive amount."),
        ("0", 5, "greater than zero"),
        ("NaN", 5, "Enter a plain number"),
        ("1.001", 5, "Use at most 2 decimals"),
        ("99999999999999", 5, "Enter an amount up to"),
        ("2.5%", 5, "whole percentage"),
    ],
)
def test_bad_temporary_increase_refused_with_message(admin, db, acme, increase, days, message):
    until = (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")
    response = admin.post(
        balance_url(acme.postpaid, "temporary-increase"),
        data={"increase": increase, "valid_until": until},
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    reload(db)
    assert db.get(Account, acme.postpaid.id).temp_increase_valid_until is None
    assert db.scalars(select(CreditLimitChange)).all() == []


def test_bad_valid_until_refused(admin, db, acme):
    response = admin.post(
        balance_url(acme.postpaid, "temporary-increase"),
        data={"increase": "10", "valid_until": "tomorrow"},
        headers=HX,
    )
    assert response.status_code == 200  # HTMX swaps 200 only
    assert "Not a valid datetime value." in response.get_data(as_text=True)
    reload(db)
    assert db.get(Account, acme.postpaid.id).temp_increase_valid_until is None


def test_remove_temporary_increase(admin, db, acme):
    acme.postpaid.temp_increase_minor = 1000
    acme.postpaid.temp_increase_valid_until = utcnow() + timedelta(days=1)
    db.commit()
    response = admin.post(balance_url(acme.postpaid, "temporary-increase/remove"))
    assert response.status_code == 303
    reload(db)
    assert db.get(Account, acme.postpaid.id).temp_increase_minor is None
    response = admin.post(balance_url(acme.postpaid, "temporary-increase/remove"))
    assert "There is no temporary increase to remove." in response.get_data(as_text=True)


def test_set_permanent_limit_and_bad_values(admin, db, acme):
    assert (
        admin.post(
            balance_url(acme.postpaid, "credit-limit"), data={"credit_limit": "300"}
        ).status_code
        == 303
    )
    for bad in ("-1", "NaN", "1.999", "1e5", "100000000000"):
        response = admin.post(
            balance_url(acme.postpaid, "credit-limit"), data={"credit_limit": bad}
        )
        assert response.status_code == 422
    reload(db)
    assert db.get(Account, acme.postpaid.id).credit_limit_minor == 30000
    response = admin.post(balance_url(acme.prepaid, "credit-limit"), data={"credit_limit": "5"})
    assert "only for postpaid customers" in response.get_data(as_text=True)


def test_thresholds_via_form(admin, db, acme):
    response = admin.post(balance_url(acme.postpaid, "thresholds"), data={"thresholds": "50%, 20"})
    assert response.status_code == 303
    response = admin.post(
        balance_url(acme.prepaid, "thresholds"), data={"thresholds": "abc, 10%"}, headers=HX
    )
    html = response.get_data(as_text=True)
    assert "&#39;abc&#39; is not an amount" in html
    assert "percentages are only for postpaid accounts" in html
    reload(db)
    assert db.get(Account, acme.postpaid.id).warning_thresholds == "50%, 20.00"
    assert db.get(Account, acme.prepaid.id).warning_thresholds is None


def test_transfers_via_form(admin, db, acme):
    assert (
        admin.post(balance_url(acme.prepaid, "transfers"), data={"transfers": "no"}).status_code
        == 303
    )
    response = admin.post(balance_url(acme.prepaid, "transfers"), data={"transfers": "maybe"})
    assert response.status_code == 422
    reload(db)
    assert db.get(Account, acme.prepaid.id).transfers == TransferSetting.NO


def payment(admin, account, **data):
    fields = {
        "kind": "payment",
        "amount": "12.50",
        "order_number": "ORD-9",
        "reason": "Bank",
        "idempotency_key": "key-12345678",
    }
    fields.update(data)
    return admin.post(balance_url(account, "payment"), data=fields, headers=HX)


def test_manual_payment_via_form_changes_balance_once(admin, db, acme):
    first = payment(admin, acme.prepaid)
    assert "Payment recorded." in first.get_data(as_text=True)
    assert "£12.50" in first.get_data(as_text=True)
    payment(admin, acme.prepaid)  # the same form submitted twice
    reload(db)
    account = db.get(Account, acme.prepaid.id)
    assert account.balance_minor == 1250
    entry = db.scalars(select(LedgerEntry)).one()
    assert (entry.kind, entry.reference, entry.amount_minor) == (EntryKind.PAYMENT, "ORD-9", 1250)


def test_adjustment_via_form(admin, db, acme):
    payment(admin, acme.prepaid, kind="adjustment", amount="-3.00", idempotency_key="adj-12345678")
    reload(db)
    assert db.get(Account, acme.prepaid.id).balance_minor == -300
    assert db.scalars(select(LedgerEntry)).one().kind == EntryKind.ADJUSTMENT


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "-5"}, "Enter a positive amount."),
        ({"amount": "0"}, "Enter an amount greater than zero."),
        ({"amount": "NaN"}, "Enter a plain number"),
        ({"amount": "Infinity"}, "Enter a plain number"),
        ({"amount": "99999999999"}, "Enter an amount up to"),
        ({"amount": "1.005"}, "Use at most 2 decimals"),
        ({"amount": ""}, "Enter an amount."),
        ({"reason": ""}, "This field is required."),
        ({"kind": "gift"}, "Not a valid choice"),
        ({"idempotency_key": "x"}, "Reload the page and try again."),
        ({"order_number": "o" * 61}, "Field cannot be longer than 60 characters."),
    ],
)
def test_bad_payment_changes_nothing(admin, db, acme, data, message):
    response = payment(admin, acme.prepaid, **data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    reload(db)
    assert db.get(Account, acme.prepaid.id).balance_minor == 0
    assert db.scalars(select(LedgerEntry)).all() == []
    # Nothing but the sign-in itself (auth.*) was audited.
    assert db.scalars(select(AuditLog).where(~AuditLog.action.startswith("auth."))).all() == []


def test_bad_payment_without_htmx_is_422_full_page(admin, acme):
    response = admin.post(
        balance_url(acme.prepaid, "payment"),
        data={"amount": "-1", "reason": "x", "kind": "payment", "idempotency_key": "k-12345678"},
    )
    assert response.status_code == 422
    assert "<html" in response.get_data(as_text=True)


def test_foreign_customer_balance_is_404(admin, acme, beta):
    assert admin.get(balance_url(beta.prepaid)).status_code == 404
    response = payment(admin, beta.prepaid)
    assert response.status_code == 404


def test_unallocated_payments_listed(admin, db, acme):
    payment(admin, acme.postpaid, amount="40.00")
    html = admin.get(balance_url(acme.postpaid)).get_data(as_text=True)
    assert 'id="unallocated-total">£40.00' in html
