"""Tenant isolation over EVERY /admin URL of the URL map, so new admin pages are covered as
they land: a customer user gets 403, an anonymous visitor is sent to /login, and a reseller
admin asking for another reseller's object gets 404 (403 on operator-only pages).

Adding an admin URL with a new <int:...> argument? Add it to ARGUMENTS below.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from werkzeug.routing import IntegerConverter

from portal.models import (
    AddOn,
    ApiToken,
    AuditLog,
    CardCode,
    CardCodeRecharge,
    CreditChangeKind,
    CreditLimitChange,
    EntryKind,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    Notice,
    OutboxEmail,
    Payment,
    PaymentCard,
    PaymentPurpose,
    Plan,
    PlanLicense,
    Receipt,
    ReserveGrant,
    Role,
    TopupCard,
    TopupCardBatch,
    TopupProduct,
    UnallocatedPayment,
    utcnow,
)
from tests.admin.helpers import make_tenant
from tests.builders import login, make_user
from tests.conftest import TEST_CONFIG, build_app

# URL argument name -> key of the objects built for each tenant (see tenant_objects).
ARGUMENTS = {
    "customer_id": "account",
    "account_id": "account",
    "class_id": "customer_class",
    "customer_class_id": "customer_class",
    "user_id": "customer_user",
    "admin_id": "admin_user",
    "card_id": "topup_card",
    "batch_id": "topup_card_batch",
    "code_id": "card_code",
    "card_code_id": "card_code",
    "recharge_id": "card_code_recharge",
    "token_id": "api_token",
    "invoice_id": "invoice",
    "payment_id": "payment",
    "payment_card_id": "payment_card",
    "grant_id": "reserve_grant",
    "entry_id": "ledger_entry",
    "audit_id": "audit_log",
    "notice_id": "notice",
    "email_id": "outbox_email",
    "outbox_id": "outbox_email",
    "unallocated_id": "unallocated_payment",
    "change_id": "credit_limit_change",
    "receipt_id": "receipt",
    "reseller_id": "reseller",
    # Catalogue objects belong to no reseller (operator-only pages).
    "plan_id": "plan",
    "license_id": "plan_license",
    "addon_id": "addon",
    "product_id": "topup_product",
}


def admin_routes() -> list[tuple[str, str, str]]:
    """(rule, method, endpoint) of every /admin route, read from a throwaway app's URL map."""
    app = build_app("sqlite://", **{k: v for k, v in TEST_CONFIG.items() if k != "TESTING"})
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin"):
            continue
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            routes.append((rule.rule, method, rule.endpoint))
    app.extensions["engine"].dispose()
    return sorted(routes)


ROUTES = admin_routes()


def int_arguments(app, rule_text: str, endpoint: str) -> list[str]:
    rule = next(r for r in app.url_map.iter_rules(endpoint) if r.rule == rule_text)
    return [
        name
        for name, converter in rule._converters.items()
        if isinstance(converter, IntegerConverter)
    ]


def other_arguments(app, rule_text: str, endpoint: str) -> dict[str, str]:
    rule = next(r for r in app.url_map.iter_rules(endpoint) if r.rule == rule_text)
    return {
        name: "x"
        for name, converter in rule._converters.items()
        if not isinstance(converter, IntegerConverter)
    }


def tenant_objects(db, name: str, email: str, shared: dict) -> dict:
    """One object of every model that has a reseller_id or belongs to a reseller's object."""
    t = make_tenant(db, name=name, admin_email=email)
    account = t.prepaid
    now = utcnow()
    customer_user = make_user(db, account=account, email=f"customer@{name.lower()}.test")
    batch = TopupCardBatch(
        reseller_id=t.reseller.id,
        series=name[:4].upper(),
        quantity=1,
        amount_minor=100,
        currency="GBP",
        pin_length=10,
    )
    db.add(batch)
    db.flush()
    card = TopupCard(
        reseller_id=t.reseller.id,
        batch_id=batch.id,
        serial=f"{name}-1",
        series=name[:4].upper(),
        amount_minor=100,
        currency="GBP",
        pin_hash=f"hash-{name}",
        pin_encrypted=b"x",
        pin_length=10,
    )
    code = CardCode(
        reseller_id=t.reseller.id,
        account_id=account.id,
        code=f"1234{len(name)}{ord(name[0])}",  # distinct per tenant (the API finds codes)
        credit_minor=100,
        currency="GBP",
    )
    db.add_all([card, code])
    db.flush()
    recharge = CardCodeRecharge(
        card_code_id=code.id, order_number="O-1", credit_added_minor=100, credit_left_minor=100
    )
    token = ApiToken(
        reseller_id=t.reseller.id, name="switch", token_hash=f"h-{name}", prefix=name[:4]
    )
    invoice = Invoice(
        reseller_id=t.reseller.id,
        account_id=account.id,
        number=1,
        period_start=date.today(),
        period_end=date.today() + timedelta(days=30),
        currency="GBP",
        subtotal_minor=100,
        total_minor=120,
        status=InvoiceStatus.OPEN,
    )
    payment_card = PaymentCard(
        account_id=account.id,
        stripe_payment_method_id=f"pm_{name}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2040,
    )
    db.add_all([recharge, token, invoice, payment_card])
    db.flush()
    payment = Payment(
        account_id=account.id,
        card_id=payment_card.id,
        purpose=PaymentPurpose.TOPUP,
        amount_minor=100,
        currency="GBP",
        idempotency_key=f"pay-{name}",
    )
    grant = ReserveGrant(
        account_id=account.id,
        amount_minor=100,
        remaining_minor=100,
        currency="GBP",
        source="test",
        expires_at=now + timedelta(days=30),
        idempotency_key=f"grant-{name}",
    )
    entry = LedgerEntry(
        account_id=account.id,
        kind=EntryKind.ADJUSTMENT,
        amount_minor=0,
        balance_after_minor=0,
        currency="GBP",
        description="x",
        idempotency_key=f"e-{name}",
    )
    audit_row = AuditLog(reseller_id=t.reseller.id, action="test", object_type="account")
    notice = Notice(account_id=account.id, message="hello")
    outbox = OutboxEmail(
        reseller_id=t.reseller.id,
        account_id=account.id,
        to_address=account.email,
        subject="s",
        body="b",
        html_body="<p>b</p>",
    )
    unallocated = UnallocatedPayment(
        account_id=account.id, amount_minor=1, remaining_minor=1, currency="GBP", source="x"
    )
    change = CreditLimitChange(
        account_id=t.postpaid.id, kind=CreditChangeKind.PERMANENT, old_value="a", new_value="b"
    )
    db.add_all([payment, grant, entry, audit_row, notice, outbox, unallocated, change])
    db.flush()
    receipt = Receipt(
        reseller_id=t.reseller.id,
        account_id=account.id,
        payment_id=payment.id,
        number=1,
        amount_minor=100,
        currency="GBP",
        description="Top-up by card",
        method="Visa •••• 4242",
    )
    db.add(receipt)
    db.flush()
    return {
        "reseller": t.reseller, "admin_user": t.admin, "account": account,
        "customer_class": t.klass, "customer_user": customer_user, "topup_card": card,
        "topup_card_batch": batch, "card_code": code, "card_code_recharge": recharge,
        "api_token": token, "invoice": invoice, "payment": payment,
        "payment_card": payment_card, "reserve_grant": grant, "ledger_entry": entry,
        "audit_log": audit_row, "notice": notice, "outbox_email": outbox,
        "unallocated_payment": unallocated, "credit_limit_change": change, "receipt": receipt,
        **shared,
    }  # fmt: skip


@pytest.fixture
def world(db):
    plan = Plan(name="Basic", price_minor=1000, currency="GBP")
    db.add(plan)
    db.flush()
    license_ = PlanLicense(plan_id=plan.id, service="extensions", label="Extensions", limit=5)
    addon = AddOn(service="extensions", label="More", units=1, price_minor=100, currency="GBP")
    product = TopupProduct(amount_minor=1000, currency="GBP")
    db.add_all([license_, addon, product])
    db.flush()
    shared = {"plan": plan, "plan_license": license_, "addon": addon, "topup_product": product}
    own = tenant_objects(db, "Acme", "admin@acme.test", shared)
    foreign = tenant_objects(db, "Beta", "admin@beta.test", shared)
    db.commit()
    return {"own": own, "foreign": foreign}


def build_url(app, rule: str, endpoint: str, objects: dict) -> str:
    from flask import url_for

    values = other_arguments(app, rule, endpoint)
    for name in int_arguments(app, rule, endpoint):
        if name not in ARGUMENTS:
            pytest.fail(
                f"{rule}: unknown URL argument <int:{name}>. Add {name!r} to ARGUMENTS in "
                "tests/admin/test_isolation.py (and an object of its model to tenant_objects)."
            )
        values[name] = objects[ARGUMENTS[name]].id
    with app.test_request_context():
        return url_for(endpoint, **values)


def call(client, method: str, url: str):
    return client.get(url) if method == "GET" else client.post(url, data={})


def test_the_url_map_has_admin_routes():
    assert len(ROUTES) > 10
    assert ("/admin/customers/<int:customer_id>/balance", "GET", "admin.customer_balance") in ROUTES


@pytest.mark.parametrize(("rule", "method", "endpoint"), ROUTES)
def test_admin_url_is_isolated(app, db, world, rule, method, endpoint):
    url = build_url(app, rule, endpoint, world["own"])
    foreign_url = build_url(app, rule, endpoint, world["foreign"])

    anonymous = app.test_client()
    response = call(anonymous, method, url)
    assert response.status_code == 302, f"{method} {url} as anonymous"
    assert response.headers["Location"].startswith("/login")

    customer = app.test_client()
    login(customer, "customer@acme.test")
    assert call(customer, method, url).status_code == 403, f"{method} {url} as a customer"

    if foreign_url == url:
        return  # no object ids in this URL
    admin = app.test_client()
    login(admin, "admin@acme.test")
    status = call(admin, method, foreign_url).status_code
    if status == 403:
        # Allowed only where the admin is refused everywhere (operator-only pages).
        own_status = call(admin, method, url).status_code
        assert own_status == 403, (
            f"{method} {foreign_url}: 403 for another reseller's object but {own_status} for "
            "the admin's own: tenant pages must answer 404 (security.get_scoped_or_404)"
        )
    else:
        assert status == 404, f"{method} {foreign_url} (another reseller's ids) gave {status}"


def test_operator_role_is_not_a_customer(app, db, world):
    """Sanity check of the fixture: the customer above really is one."""
    make_user(db, role=Role.OPERATOR, email="op@iso.test")
    db.commit()
    operator = app.test_client()
    login(operator, "op@iso.test")
    assert operator.get("/admin/customers").status_code == 200
