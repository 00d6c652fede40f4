"""Password reset by email: one answer for every email, a signed single-use link valid
30 minutes, and the reset signs out every session."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from portal.models import AuditLog, OutboxEmail
from tests.builders import login, make_account, make_reseller, make_user

NEW_PASSWORD = "a-brand-new-secret"  # noqa: S105


@pytest.fixture
def alice(db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="alice@t.test")
    db.commit()
    return user


def ask(client, email):
    return client.post("/forgot-password", data={"email": email}, follow_redirects=True)


def reset_link(db) -> str:
    db.rollback()
    mail = db.scalar(select(OutboxEmail).where(OutboxEmail.subject == "Reset your password"))
    return re.search(r"http://\S+(/reset-password/\S+)", mail.body).group(1)


def test_the_login_page_offers_forgot_password(client):
    html = client.get("/login").get_data(as_text=True)
    assert 'href="/forgot-password">Forgot password?</a>' in html
    page = client.get("/forgot-password").get_data(as_text=True)
    assert '<label for="email">Email</label>' in page
    assert ">Send reset link</button>" in page


def test_the_same_answer_whether_or_not_the_email_exists(client, db, alice):
    known, unknown = ask(client, "alice@t.test"), ask(client, "nobody@t.test")
    assert known.status_code == unknown.status_code == 200
    assert known.request.path == unknown.request.path == "/login"
    assert known.get_data() == unknown.get_data()
    db.rollback()
    mails = db.scalars(select(OutboxEmail.to_address)).all()
    assert mails == ["alice@t.test"]
    # Both asks are audited (the unknown one for the operator only, without the address).
    rows = db.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [r.action for r in rows] == [
        "auth.password_reset_requested",
        "auth.password_reset_unknown",
    ]
    assert rows[1].reseller_id is None and "nobody" not in f"{rows[1].object_id}{rows[1].after}"


def test_reset_sets_the_password_and_signs_out_every_session(app, client, db, alice):
    elsewhere = app.test_client()
    assert login(elsewhere, "alice@t.test").status_code == 302
    ask(client, "ALICE@t.test")
    link = reset_link(db)
    page = client.get(link)
    assert page.status_code == 200 and "New password" in page.get_data(as_text=True)
    done = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert elsewhere.get("/billing/balance").status_code == 302  # signed out
    assert login(client, "alice@t.test").status_code == 200  # the old password is gone
    assert login(client, "alice@t.test", NEW_PASSWORD).status_code == 302
    db.rollback()
    actions = db.scalars(select(AuditLog.action)).all()
    assert "auth.password_reset_requested" in actions and "auth.password_reset" in actions
    assert not any(NEW_PASSWORD in (row.after or "") for row in db.scalars(select(AuditLog)))


def test_the_link_works_once(client, db, alice):
    ask(client, "alice@t.test")
    link = reset_link(db)
    client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    again = client.post(
        link, data={"password": "another-password-1", "confirm": "another-password-1"}
    )
    assert again.status_code == 400
    assert "not valid" in again.get_data(as_text=True)
    assert login(client, "alice@t.test", NEW_PASSWORD).status_code == 302


def test_the_link_expires_after_30_minutes(client, db, alice, monkeypatch):
    ask(client, "alice@t.test")
    link = reset_link(db)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 31 * 60)
    assert client.get(link).status_code == 400
    monkeypatch.setattr(time, "time", lambda: real() + 29 * 60)
    assert client.get(link).status_code == 200


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "xx", lambda t: "garbage", lambda t: "a" * 3000]
)
def test_a_forged_link_is_refused(client, db, alice, mangle):
    ask(client, "alice@t.test")
    link = reset_link(db)
    token = link.rsplit("/", 1)[1]
    response = client.post(
        f"/reset-password/{mangle(token)}", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert login(client, "alice@t.test").status_code == 302  # unchanged


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [("short", "short", "at least 10"), (NEW_PASSWORD, "different-one", "The passwords differ.")],
)
def test_a_bad_new_password_is_refused_and_the_link_still_works(
    client, db, alice, password, confirm, message
):
    ask(client, "alice@t.test")
    link = reset_link(db)
    response = client.post(link, data={"password": password, "confirm": confirm})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert client.get(link).status_code == 200


def test_asking_twice_quickly_sends_one_mail(client, db, alice):
    ask(client, "alice@t.test")
    ask(client, "alice@t.test")
    db.rollback()
    assert len(db.scalars(select(OutboxEmail)).all()) == 1
