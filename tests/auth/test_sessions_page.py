"""Sessions: the user's signed-in browsers (device, address, last seen) and Sign out everywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.auth.sessions import describe_device
from portal.models import AuditLog, UserSession, utcnow
from tests.builders import PASSWORD, make_account, make_reseller, make_user

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def alice(db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="alice@t.test")
    db.commit()
    return user


def browser(app, agent, ip):
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": agent, "REMOTE_ADDR": ip})
    response = client.post("/login", data={"email": "alice@t.test", "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_the_page_lists_each_browser_with_device_address_and_last_seen(app, alice):
    laptop = browser(app, FIREFOX, "198.51.100.10")
    browser(app, SAFARI, "203.0.113.20")
    html = laptop.get("/profile/sessions").get_data(as_text=True)
    assert "<td>Firefox on Linux <strong>(this browser)</strong></td>" in html
    assert "<td>Safari on iPhone</td>" in html
    assert "<td>198.51.100.10</td>" in html and "<td>203.0.113.20</td>" in html
    assert html.count("(this browser)") == 1
    assert ">Sign out everywhere</button>" in html


def test_sign_out_everywhere_ends_every_session(app, db, alice):
    laptop = browser(app, FIREFOX, "198.51.100.10")
    phone = browser(app, SAFARI, "203.0.113.20")
    response = laptop.post("/profile/sessions/sign-out-everywhere")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert phone.get("/billing/balance").status_code == 302
    assert laptop.get("/billing/balance").status_code == 302
    db.rollback()
    assert all(row.revoked_at for row in db.scalars(select(UserSession)))
    assert "auth.sign_out_everywhere" in db.scalars(select(AuditLog.action)).all()


def test_last_seen_is_kept_up_to_date_and_an_idle_record_ends_the_session(app, db, alice):
    laptop = browser(app, FIREFOX, "198.51.100.10")
    old = utcnow() - timedelta(minutes=5)
    db.execute(update(UserSession).values(last_seen_at=old))
    db.commit()
    assert laptop.get("/billing/balance").status_code == 200
    db.rollback()
    assert db.scalar(select(UserSession.last_seen_at)) > old + timedelta(minutes=4)
    # Idle longer than the session lifetime on the server: signed out whatever the cookie says.
    db.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    db.commit()
    assert laptop.get("/billing/balance").status_code == 302


def test_the_session_record_stores_no_cookie_value(app, db, alice):
    laptop = browser(app, FIREFOX, "198.51.100.10")
    with laptop.session_transaction() as session:
        key = session["sid"]
    db.rollback()
    row = db.scalar(select(UserSession))
    assert key not in row.key_hash and len(row.key_hash) == 64


@pytest.mark.parametrize(
    ("agent", "name"),
    [(FIREFOX, "Firefox on Linux"), (SAFARI, "Safari on iPhone"), ("", "Unknown")],
)
def test_device_names(agent, name):
    assert describe_device(agent) == name


def test_sessions_that_ended_long_ago_are_pruned_at_the_next_sign_in(app, db, alice):
    browser(app, FIREFOX, "198.51.100.10")
    long_ago = utcnow() - timedelta(days=31)
    db.execute(update(UserSession).values(revoked_at=long_ago, last_seen_at=long_ago))
    db.commit()
    browser(app, SAFARI, "203.0.113.20")
    db.rollback()
    assert [row.ip for row in db.scalars(select(UserSession))] == ["203.0.113.20"]
