"""Hostile values in every form and query-string filter: never a 500, and the money adds up.

The forms are found by crawling the pages each role can reach, so new pages are covered
without touching this test.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from portal.demo import DEMO_TOTP_SECRETS
from portal.ledger import audit_balances
from portal.models import User
from tests.builders import login
from tests.reliability.forms_crawler import crawl

HOSTILE = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "-1",
            "0",
            "0.00",
            "-0.01",
            "NaN",
            "nan",
            "Infinity",
            "-inf",
            "1e9",
            "1E-2",
            "12.345",
            "99999999999999999999999",
            "1,2,3",
            "١٢",
            "１２",
            "<script>alert(1)</script>",
            '"><img src=x onerror=alert(1)>',
            "' OR 1=1 --",
            "'; DROP TABLE accounts; --",
            "=cmd|' /C calc'!A0",
            "%00",
            "\x00",
            "\u202egnp.exe",
            "x" * 5000,
            "2026-02-30",
            "9999-12-31T23:59",
            "-5%",
            "150%",
            "true",
            "on",
            "[]",
            "{}",
            "None",
            "../../etc/passwd",
        ]
    ),
    st.text(max_size=60),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)

ROLES = {
    "customer": ("alice@example.com", ["/billing/balance"], ("/billing", "/profile")),
    "reseller admin": ("admin@acme.example", ["/admin/"], ("/admin", "/profile")),
    "operator": ("operator@example.com", ["/admin/"], ("/admin", "/profile")),
}


@pytest.fixture
def password_only(demo, db):
    """The demo admins without their second factor, so a form that ends the session can be
    followed by a password sign-in (the two-factor step is fuzzed by its own test below);
    their profile then offers the two-factor set-up form to fuzz."""
    db.execute(update(User).values(totp_secret=None, totp_enabled_at=None))
    db.commit()


def _submit(client, form, data, htmx=True):
    headers = {"HX-Request": "true"} if htmx else {}
    if form.method == "get":
        return client.get(form.action, query_string=data, headers=headers)
    return client.post(form.action, data=data, headers=headers)


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_every_form_survives_hostile_values(app, password_only, db, role):
    email, start, prefix = ROLES[role]
    client = app.test_client()
    assert login(client, email, "demo-pass").status_code == 302
    forms = crawl(client, start, prefix)
    assert forms, f"no forms found for {role}"

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def fuzz(data):
        for form in forms:
            values = {}
            for name, examples in form.fields.items():
                if name == "csrf_token":
                    continue
                choice = data.draw(st.integers(0, 9), label=f"{form.action}:{name}:mode")
                if choice == 0:
                    continue  # a missing field
                if choice == 1 and examples:
                    values[name] = data.draw(st.sampled_from(examples))
                else:
                    values[name] = data.draw(HOSTILE, label=f"{form.action}:{name}")
            response = _submit(client, form, values)
            assert response.status_code < 500, (form.action, values, response.status_code)
            if response.status_code in (302, 204) and "/login" in (
                response.headers.get("Location", "") + response.headers.get("HX-Redirect", "")
            ):
                login(client, email, "demo-pass")  # a form may legitimately end the session

    fuzz()
    db.rollback()
    assert audit_balances(db) == []


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_every_query_string_survives_hostile_values(app, password_only, db, role):
    """Every page reached with a query string (filters, sorting, paging cursors, HTMX
    detail loads): each parameter replaced by hostile values, full page and fragment."""
    from urllib.parse import parse_qsl, urlsplit

    email, start, prefix = ROLES[role]
    client = app.test_client()
    assert login(client, email, "demo-pass").status_code == 302
    visited: set[str] = set()
    crawl(client, start, prefix, limit=120, pages=visited)
    targets = {}
    for page in visited:
        parts = urlsplit(page)
        names = tuple(sorted({name for name, _ in parse_qsl(parts.query)}))
        if names:
            targets.setdefault((parts.path, names), page)
    assert targets, f"no page with a query string found for {role}"

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def fuzz(data):
        for path, names in targets:
            query = {name: data.draw(HOSTILE, label=f"{path}?{name}") for name in names}
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get(path, query_string=query, headers=headers)
                assert response.status_code < 500, (path, query, response.status_code)

    fuzz()
    db.rollback()
    assert audit_balances(db) == []


PUBLIC_PAGES = ["/login", "/forgot-password", "/reset-password/not-a-token"]


@pytest.mark.slow
@pytest.mark.parametrize("step", ["anonymous", "second factor"])
def test_the_sign_in_forms_survive_hostile_values(app, demo, step):
    """Sign-in, forgot password, reset and the second step (with a sign-in pending)."""
    client = app.test_client()
    start = PUBLIC_PAGES
    if step == "second factor":
        assert "admin@acme.example" in DEMO_TOTP_SECRETS
        response = login(client, "admin@acme.example", "demo-pass")
        assert response.headers["Location"] == "/login/two-factor"
        start = ["/login/two-factor"]
    forms = crawl(client, start, ("/login", "/forgot-password", "/reset-password"))
    assert forms, f"no forms found for {step}"

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def fuzz(data):
        for form in forms:
            values = {
                name: data.draw(HOSTILE, label=f"{form.action}:{name}")
                for name in form.fields
                if name != "csrf_token"
            }
            for htmx in (True, False):
                response = _submit(client, form, values, htmx=htmx)
                assert response.status_code < 500, (form.action, values, response.status_code)

    fuzz()
