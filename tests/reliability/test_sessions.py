"""Session hardening: rotation at sign-in, idle timeout, secure flags outside development."""

import time

import pytest

from tests.builders import login, make_account, make_reseller, make_user


@pytest.fixture
def user(db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="s@t.test")
    db.commit()
    return user


def test_sign_in_starts_a_fresh_session(client, user):
    with client.session_transaction() as session:
        session["planted"] = "by-an-attacker"  # e.g. a fixated session
    login(client, "s@t.test")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("_user_id", "").startswith(f"{user.id}:")


@pytest.mark.parametrize("app_config", [{"PERMANENT_SESSION_LIFETIME": 1}])
def test_idle_session_expires(client, user):
    login(client, "s@t.test")
    assert client.get("/billing/balance").status_code == 200
    time.sleep(2.1)
    response = client.get("/billing/balance")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("app_config", [{"SESSION_COOKIE_SECURE": True}])
def test_secure_flag_outside_development(client, user):
    cookie = login(client, "s@t.test").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_error_pages_do_not_leak_internals(client, user):
    login(client, "s@t.test")
    html = client.get("/billing/balance?before=99999999999999999999999").get_data(as_text=True)
    assert "Traceback" not in html
