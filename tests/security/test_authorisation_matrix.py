"""The authorisation matrix: EVERY URL of the URL map (auth, billing, admin, api, webhooks)
for every kind of caller, generated from app.url_map so new pages are covered as they land.

Callers: anonymous, the customer, another reseller's customer, another reseller's admin,
the right reseller's admin, the operator. For the API the caller's credential is a bearer
token: none (anonymous, customers), the other reseller's, the right reseller's, the
operator's. Expected answers:

- anonymous on a page: 302 to /login (API: 401; webhook without signature: 400)
- the wrong role (customer on /admin, admin on /billing, reseller admin on an operator-only
  page): 403
- another tenant's object id: 404 (never 403, so ids don't leak)
- the right caller: GET 200; POST "allowed" (anything but 401/403/404/login, never 5xx)

Every GET answer is also checked for the security headers (CSP without inline script,
frame denial, nosniff, referrer policy). tests/admin/test_isolation.py proves the same
isolation for /admin with empty POST bodies; this matrix adds the positive side (the
right admin and the operator get in) and the other areas.
"""

from __future__ import annotations

import pytest
from flask import url_for
from werkzeug.routing import IntegerConverter

from portal import api_tokens
from portal.models import BatchStatus, Role
from portal.pins import vault
from tests.admin.test_isolation import ARGUMENTS, tenant_objects, world  # noqa: F401
from tests.builders import login, make_user
from tests.conftest import TEST_CONFIG, build_app

CALLERS = ["anonymous", "customer", "other_customer", "other_admin", "admin", "operator"]
LOGINS = {
    "customer": "customer@acme.test",
    "other_customer": "customer@beta.test",
    "other_admin": "admin@beta.test",
    "admin": "admin@acme.test",
    "operator": "operator@matrix.test",
}
# Operator-only admin pages (a reseller admin gets 403 on them, whatever the ids).
OPERATOR_ONLY = {
    "admin.resellers",
    "admin.reseller",
    "admin.reseller_admin_new",
    "admin.reseller_delete",
    "admin.plans",
    "admin.plan",
    "admin.plan_delete",
    "admin.plan_license_new",
    "admin.plan_license_delete",
    "admin.addons",
    "admin.addon",
    "admin.addon_delete",
    "admin.topup_products",
    "admin.topup_product",
    "admin.topup_product_delete",
    "admin.settings",
}
# In /billing an id names the customer's own objects.
BILLING_ARGUMENTS = {
    "card_id": "payment_card",
    "invoice_id": "invoice",
    "grant_id": "reserve_grant",
    "addon_id": "addon",
    "receipt_id": "receipt",
}
PUBLIC = {
    "auth.login",
    "auth.index",
    "healthz",
    "api.openapi",
    # The second sign-in step (without a pending sign-in: back to /login), password reset
    # and the new-email link (their tokens are the credential).
    "auth.two_factor",
    "auth.two_factor_enroll",
    "auth.forgot",
    "auth.reset",
    "auth.confirm_email",
    # The language switcher at the foot of every page: for everyone, signed in or not.
    "auth.set_language",
}
# Every signed-in person's own pages, whatever the role.
SELF_SERVICE = {
    "auth.profile_page",
    "auth.change_password",
    "auth.change_email",
    "auth.two_factor_settings",
    "auth.two_factor_setup",
    "auth.two_factor_new_codes",
    "auth.two_factor_disable",
    "auth.sessions_page",
}
SIGN_OUT = {"auth.logout", "auth.sign_out_everywhere_view"}
# Pages that only send the browser on (/billing is the balance page): 302 where others say 200.
REDIRECTS: dict[str, str] = {}
# Catalogue objects are shared by every reseller: their ids are nobody's "foreign" ids.
SHARED = {"plan_id", "license_id", "addon_id", "product_id"}
MISSING = 999_999


def all_routes() -> list[tuple[str, str, str]]:
    app = build_app("sqlite://", **{k: v for k, v in TEST_CONFIG.items() if k != "TESTING"})
    routes = sorted(
        (rule.rule, method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) & {"GET", "POST"})
    )
    app.extensions["engine"].dispose()
    return routes


ROUTES = all_routes()


@pytest.fixture
def app_config():
    # Nothing listens on the discard port: pages that would call Stripe fail politely.
    return {"STRIPE_API_BASE": "http://127.0.0.1:9", "AFTER_DEBIT_CHECKS": "off"}


def _rule(app, rule_text: str, endpoint: str):
    return next(r for r in app.url_map.iter_rules(endpoint) if r.rule == rule_text)


def build_url(app, rule_text: str, endpoint: str, objects: dict | None) -> str:
    """The URL with the ids of `objects` (None: ids that exist nowhere)."""
    names = BILLING_ARGUMENTS if rule_text.startswith("/billing") else ARGUMENTS
    values = {}
    for name, converter in _rule(app, rule_text, endpoint)._converters.items():
        if name == "code":  # the API's <code> of a card code
            values[name] = objects["card_code"].code if objects else str(MISSING)
        elif not isinstance(converter, IntegerConverter):  # the API's <account_number>
            values[name] = objects["account"].number if objects else str(MISSING)
        elif name in BILLING_ARGUMENTS or name in ARGUMENTS:
            key = names.get(name, ARGUMENTS.get(name))
            values[name] = objects[key].id if objects else MISSING
        else:
            pytest.fail(f"{rule_text}: add <int:{name}> to ARGUMENTS in the isolation test")
    with app.test_request_context():
        return url_for(endpoint, **values)


def has_tenant_ids(app, rule_text: str, endpoint: str) -> bool:
    return bool(set(_rule(app, rule_text, endpoint)._converters) - SHARED)


def expected(caller: str, rule: str, endpoint: str, tenant_ids: bool) -> str:
    """'302-login', '401', '403', '404', '400', 'ok' (GET 200, POST not refused) or
    'allowed' (public: anything below 500 but 401/403/404)."""
    area = rule.split("/")[1]
    if endpoint in PUBLIC:
        return "allowed"
    if area == "webhooks":
        return "400"  # unsigned: refused for everybody
    if area == "api":
        return {
            "anonymous": "401",
            "customer": "401",
            "other_customer": "401",
            "other_admin": "404",
            "admin": "ok",
            "operator": "ok",
        }[caller]
    if caller == "anonymous":
        return "302-login"
    if endpoint in SIGN_OUT:
        return "allowed"
    if endpoint in SELF_SERVICE:
        return "ok"
    foreign = caller.startswith("other_") and tenant_ids
    if area == "billing":
        if caller not in ("customer", "other_customer"):
            return "403"
        return "404" if foreign else "ok"
    if caller in ("customer", "other_customer"):
        return "403"
    if caller != "operator" and endpoint in OPERATOR_ONLY:
        return "403"
    return "404" if foreign else "ok"


def assert_security_headers(response, where: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, where
    assert "frame-ancestors 'none'" in csp, where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "same-origin", where


def tokens(db, world) -> dict:  # noqa: F811 - the imported fixture's value
    own = api_tokens.create_token(db, reseller_id=world["own"]["reseller"].id, name="m")
    other = api_tokens.create_token(db, reseller_id=world["foreign"]["reseller"].id, name="m")
    operator = api_tokens.create_token(db, reseller_id=None, name="m")
    db.commit()
    return {"other_admin": other.plaintext, "admin": own.plaintext, "operator": operator.plaintext}


def test_the_matrix_covers_every_area():
    areas = {rule.split("/")[1] for rule, _, _ in ROUTES}
    assert {"admin", "billing", "api", "webhooks", "login"} <= areas
    assert len(ROUTES) > 60


@pytest.mark.parametrize(("rule", "method", "endpoint"), ROUTES)
def test_matrix(app, db, world, rule, method, endpoint):  # noqa: F811
    make_user(db, role=Role.OPERATOR, email=LOGINS["operator"])
    with app.app_context():  # real stored PINs and finished batches, like generated ones
        for objects in (world["own"], world["foreign"]):
            objects["topup_card_batch"].status = BatchStatus.DONE
            objects["topup_card"].pin_encrypted = vault().encrypt("5550001234")
    db.commit()
    bearer = tokens(db, world)
    url = build_url(app, rule, endpoint, world["own"])
    tenant_ids = has_tenant_ids(app, rule, endpoint)
    failures = []
    for caller in CALLERS:
        client = app.test_client()
        headers = {}
        if rule.startswith("/api/"):
            if caller in bearer:
                headers["Authorization"] = f"Bearer {bearer[caller]}"
        elif caller in LOGINS:
            assert login(client, LOGINS[caller]).status_code == 302
        response = call(client, method, rule, url, headers, caller)
        want = expected(caller, rule, endpoint, tenant_ids)
        got = response.status_code
        location = response.headers.get("Location", "")
        login_redirect = got == 302 and location.startswith("/login")
        if want == "302-login":
            ok = login_redirect
        elif want == "ok" and method == "GET" and endpoint in REDIRECTS:
            ok = got == 302 and location == REDIRECTS[endpoint]
        elif want == "ok" and method == "GET":
            ok = got == 200
        elif want == "ok":
            ok = got < 500 and got not in (401, 403, 404) and not login_redirect
        elif want == "allowed":
            ok = got < 500 and got not in (401, 403, 404)
        elif want == "404" and got != 404:
            # Validation may answer before the lookup; then it must answer exactly as for an
            # id that exists nowhere, so the answer tells nothing about other tenants.
            missing = call(
                client, method, rule, build_url(app, rule, endpoint, None), headers, caller
            )
            ok = (got, response.get_data()) == (missing.status_code, missing.get_data())
        else:
            ok = got == int(want)
        if not ok:
            failures.append(f"{caller}: expected {want}, got {got} {location}")
        if method == "GET":
            assert_security_headers(response, f"{caller} GET {url}")
    assert not failures, f"{method} {url}\n" + "\n".join(failures)


def call(client, method: str, rule: str, url: str, headers: dict, caller: str):
    if method == "GET":
        return client.get(url, headers=headers)
    if rule.startswith("/api/"):
        body = {"amount": "0.01", "description": "matrix", "idempotency_key": caller}
        return client.post(url, json=body, headers=headers)
    return client.post(url, data={}, headers=headers)


def test_static_files_carry_the_headers_too(client):
    response = client.get("/static/css/portal.css")
    assert response.status_code == 200
    assert_security_headers(response, "static")
    response.close()  # a file response: release the open file
