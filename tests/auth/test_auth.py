import pytest
from sqlalchemy import func, select

from portal.models import Account, Role, SignInFailure
from tests.builders import PASSWORD, login, make_account, make_reseller, make_user


@pytest.fixture
def alice(db):
    reseller = make_reseller(db)
    user = make_user(db, account=make_account(db, reseller=reseller), email="alice@t.test")
    db.commit()
    return user


def test_login_page_has_labels_and_button(client):
    html = client.get("/login").get_data(as_text=True)
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert ">Sign in</button>" in html


def test_sign_in_and_out(client, alice):
    response = login(client, "alice@t.test")
    assert response.status_code == 302
    assert response.headers["Location"] == "/billing/balance"
    assert client.get("/billing/balance").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/billing/balance").status_code == 302  # back to the login page


def test_email_is_case_insensitive(client, alice):
    assert login(client, "ALICE@t.test").status_code == 302


def test_wrong_password_is_refused_with_message(client, alice):
    response = login(client, "alice@t.test", "nope")
    assert response.status_code == 200
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/billing/balance").status_code == 302


def test_unknown_email_gets_the_same_message(client, alice):
    response = login(client, "nobody@t.test", "nope")
    assert "Wrong email or password." in response.get_data(as_text=True)


def test_five_failures_from_one_address_refuse_it_with_retry_after(app, client, alice, db):
    for _ in range(5):
        login(client, "alice@t.test", "wrong")
    response = login(client, "alice@t.test")  # from this address, even the right password
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(SignInFailure)) == 5
    # Not a lock of the account: the owner elsewhere signs in (tests/auth/test_sign_in_holes.py).
    other = app.test_client()
    assert (
        other.post(
            "/login",
            data={"email": "alice@t.test", "password": PASSWORD},
            environ_base={"REMOTE_ADDR": "198.51.100.77"},
        ).status_code
        == 302
    )


def test_sign_out_invalidates_the_old_session_cookie(app, alice):
    first, other_browser = app.test_client(), app.test_client()
    login(first, "alice@t.test")
    login(other_browser, "alice@t.test")
    stolen = app.test_client()
    cookie = first.get_cookie("session")
    stolen.set_cookie(cookie.key, cookie.value)
    assert stolen.get("/billing/balance").status_code == 200
    first.post("/logout")
    # the session record is revoked, so a copy of the cookie is no longer valid ...
    assert stolen.get("/billing/balance").status_code == 302
    assert first.get("/billing/balance").status_code == 302
    # ... while the user's other browser stays signed in ("Sign out everywhere" ends it).
    assert other_browser.get("/billing/balance").status_code == 200


def test_next_parameter_only_allows_local_paths(client, alice):
    response = client.post(
        "/login?next=//evil.example/x", data={"email": "alice@t.test", "password": "test-pass"}
    )
    assert response.headers["Location"] == "/billing/balance"
    client.post("/logout")
    response = client.post(
        "/login?next=/billing/balance?kind=topup",
        data={"email": "alice@t.test", "password": "test-pass"},
    )
    assert response.headers["Location"] == "/billing/balance?kind=topup"


def test_customer_gets_403_on_admin(client, alice):
    login(client, "alice@t.test")
    assert client.get("/admin/").status_code == 403


def test_admin_gets_403_on_billing(client, db):
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=make_reseller(db))
    db.commit()
    login(client, admin.email)
    assert client.get("/billing/balance").status_code == 403
    assert client.get("/admin/").status_code == 200


def test_anonymous_is_sent_to_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_htmx_request_with_expired_session_gets_hx_redirect(client):
    response = client.get("/billing/balance", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/login")


def test_reseller_admin_gets_404_for_another_resellers_customer(client, db):
    acme, beta = make_reseller(db), make_reseller(db)
    own = make_account(db, reseller=acme, name="Own Customer")
    foreign = make_account(db, reseller=beta, name="Foreign Customer")
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=acme)
    db.commit()
    login(client, admin.email)
    assert client.get(f"/admin/customers/{own.id}").status_code == 200
    assert client.get(f"/admin/customers/{foreign.id}").status_code == 404
    assert client.get("/admin/customers/999999").status_code == 404


def test_operator_sees_every_resellers_customer(client, db):
    foreign = make_account(db, reseller=make_reseller(db))
    operator = make_user(db, role=Role.OPERATOR)
    db.commit()
    login(client, operator.email)
    assert client.get(f"/admin/customers/{foreign.id}").status_code == 200


def test_security_headers_on_every_response(client):
    for path in ("/login", "/healthz", "/nope"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_flags(client, alice):
    response = login(client, "alice@t.test")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_friendly_404_page(client):
    response = client.get("/does-not-exist")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)


def test_unused_account_query_does_not_leak(db, alice):
    # sanity: the builder wrote what we expect, so the tests above are meaningful
    assert db.scalar(select(Account).where(Account.id == alice.account_id)) is not None
