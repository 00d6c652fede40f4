"""Two-factor sign-in (TOTP) with recovery codes: required for admins at their next sign-in,
optional for customers, rate limited, codes never replayed, secrets never stored in clear."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from portal.models import AuditLog, RecoveryCode, Role, User
from tests.builders import PASSWORD, login, make_account, make_reseller, make_user


@pytest.fixture
def app_config():
    return {"TWO_FACTOR_REQUIRED_FOR_ADMINS": True, "TWO_FACTOR_RATE_LIMIT": "5 per 5 minutes"}


@pytest.fixture
def admin(db):
    user = make_user(db, role=Role.RESELLER_ADMIN, reseller=make_reseller(db), email="adm@t.test")
    db.commit()
    return user


@pytest.fixture
def alice(db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="alice@t.test")
    db.commit()
    return user


def code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def enroll(client, setup_url: str) -> tuple[str, list[str]]:
    """Scan (read the key off the page), confirm with a code; returns (secret, recovery codes)."""
    page = client.get(setup_url).get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]{32})</code>', page).group(1)
    done = client.post(setup_url, data={"code": code(secret)})
    assert done.status_code == 200
    codes = re.findall(
        r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", done.get_data(as_text=True)
    )
    return secret, codes


def test_an_admin_must_set_up_two_factor_at_the_next_sign_in(client, db, admin):
    response = login(client, "adm@t.test")
    assert response.headers["Location"] == "/login/two-factor"
    assert client.get("/login/two-factor").headers["Location"] == "/login/two-factor/setup"
    assert client.get("/admin/").status_code == 302  # not signed in before the second factor
    page = client.get("/login/two-factor/setup")
    html = page.get_data(as_text=True)
    assert re.search(r'<img src="data:image/svg\+xml[^"]+" alt="QR code', html)
    assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]
    assert "<script" not in html.split("<body", 1)[1]
    assert client.post("/login/two-factor/setup", data={"code": "000000"}).status_code == 422
    secret, codes = enroll(client, "/login/two-factor/setup")
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/admin/").status_code == 200  # signed in
    db.rollback()
    user = db.get(User, admin.id)
    assert user.two_factor_enabled
    assert secret.encode() not in bytes(user.totp_secret)  # encrypted at rest
    hashes = db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == admin.id))
    stored = list(hashes)
    assert len(stored) == 10 and not set(stored) & {c.replace("-", "") for c in codes}
    methods = db.scalars(select(AuditLog.after).where(AuditLog.action == "auth.sign_in")).all()
    assert methods == ['{"method": "password+totp-setup"}']


def test_then_signing_in_needs_a_code_and_a_code_works_once(app, client, db, admin):
    login(client, "adm@t.test")
    secret, _ = enroll(client, "/login/two-factor/setup")
    client.post("/logout")
    assert login(client, "adm@t.test").headers["Location"] == "/login/two-factor"
    html = client.get("/login/two-factor").get_data(as_text=True)
    assert "Code from your authenticator app, or a recovery code</label>" in html
    assert client.post("/login/two-factor", data={"code": "12345"}).status_code == 422
    fresh = code(secret, 1)
    response = client.post("/login/two-factor", data={"code": fresh})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    client.post("/logout")
    other = app.test_client()  # somebody who saw that code
    login(other, "adm@t.test")
    assert other.post("/login/two-factor", data={"code": fresh}).status_code == 422
    assert other.get("/admin/").status_code == 302


def test_a_recovery_code_signs_in_once(client, db, admin):
    login(client, "adm@t.test")
    _, codes = enroll(client, "/login/two-factor/setup")
    client.post("/logout")
    login(client, "adm@t.test")
    used = client.post("/login/two-factor", data={"code": codes[3].upper()}, follow_redirects=True)
    assert used.request.path == "/admin/"
    assert "Recovery code used: 9 left." in used.get_data(as_text=True)
    client.post("/logout")
    login(client, "adm@t.test")
    assert client.post("/login/two-factor", data={"code": codes[3]}).status_code == 422


def test_wrong_codes_are_rate_limited_per_user(app, client, db, admin):
    login(client, "adm@t.test")
    secret, _ = enroll(client, "/login/two-factor/setup")
    client.post("/logout")
    login(client, "adm@t.test")
    for _ in range(5):
        assert client.post("/login/two-factor", data={"code": "000000"}).status_code == 422
    limited = client.post("/login/two-factor", data={"code": code(secret, 1)})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    # A new password sign-in from another browser does not reset the count.
    other = app.test_client()
    login(other, "adm@t.test")
    assert other.post("/login/two-factor", data={"code": code(secret, 1)}).status_code == 429
    db.rollback()
    failed = db.scalars(select(AuditLog.id).where(AuditLog.action == "auth.two_factor_failed"))
    assert len(list(failed)) == 5


def test_the_second_step_expires_and_needs_the_password_first(client, admin, monkeypatch):
    assert client.get("/login/two-factor").headers["Location"] == "/login"
    assert client.post("/login/two-factor", data={"code": "123456"}).headers["Location"] == "/login"
    login(client, "adm@t.test")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 11 * 60)
    assert client.get("/login/two-factor/setup").headers["Location"] == "/login"


def test_a_customer_may_turn_two_factor_on_and_off(client, db, alice):
    assert login(client, "alice@t.test").headers["Location"] == "/billing/balance"  # optional
    settings = client.get("/profile/two-factor").get_data(as_text=True)
    assert "Two-factor sign-in is <strong>off</strong>" in settings
    secret, _ = enroll(client, "/profile/two-factor/setup")
    client.post("/logout")
    assert login(client, "alice@t.test").headers["Location"] == "/login/two-factor"
    client.post("/login/two-factor", data={"code": code(secret, 1)})
    refused = client.post("/profile/two-factor/disable", data={"current": "wrong"})
    assert refused.status_code == 422
    assert client.post("/profile/two-factor/disable", data={"current": PASSWORD}).status_code == 303
    client.post("/logout")
    assert login(client, "alice@t.test").headers["Location"] == "/billing/balance"
    db.rollback()
    assert db.scalars(select(RecoveryCode)).all() == []


def test_an_admin_cannot_turn_two_factor_off_and_can_renew_codes(client, db, admin):
    login(client, "adm@t.test")
    _, old_codes = enroll(client, "/login/two-factor/setup")
    client.post("/profile/two-factor/disable", data={"current": PASSWORD})
    db.rollback()
    assert db.get(User, admin.id).two_factor_enabled
    renewed = client.post("/profile/two-factor/recovery-codes", data={"current": PASSWORD})
    new_codes = re.findall(
        r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", renewed.get_data(as_text=True)
    )
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    client.post("/logout")
    login(client, "adm@t.test")
    assert client.post("/login/two-factor", data={"code": old_codes[0]}).status_code == 422
    assert client.post("/login/two-factor", data={"code": new_codes[0]}).status_code == 302


def test_next_survives_the_second_step(client, db, admin):
    login(client, "adm@t.test")
    secret, _ = enroll(client, "/login/two-factor/setup")
    client.post("/logout")
    client.post("/login?next=/admin/users", data={"email": "adm@t.test", "password": PASSWORD})
    response = client.post("/login/two-factor", data={"code": code(secret, 1)})
    assert response.headers["Location"] == "/admin/users"
