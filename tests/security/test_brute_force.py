"""Brute force on sign-in, per client address (flask-limiter on POST /login).

Per (email, address) and per account: tests/auth/test_sign_in_holes.py.
PIN redemption per user and per address: tests/billing/test_redeem.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.models import SignInFailure
from tests.builders import login, make_account, make_reseller, make_user


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "3 per minute"}


@pytest.fixture
def users(db):
    reseller = make_reseller(db)
    emails = [f"spray{n}@t.test" for n in range(5)]
    for email in emails:
        make_user(db, account=make_account(db, reseller=reseller), email=email)
    db.commit()
    return emails


def attempt(client, email, password="wrong", ip="198.51.100.1"):
    return client.post(
        "/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_one_address_spraying_many_accounts_is_limited_with_retry_after(client, db, users):
    # One wrong password per account (no account lockout can trigger), from one address.
    for email in users[:3]:
        assert attempt(client, email).status_code == 200
    response = attempt(client, users[3])
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many attempts" in response.get_data(as_text=True)
    # Even the right password from that address waits.
    assert attempt(client, users[4], "test-pass").status_code == 429
    # The limited attempts never reached the password check: nothing was counted.
    db.rollback()
    assert db.scalar(select(func.count()).select_from(SignInFailure)) == 3


def test_other_addresses_are_not_affected(client, users):
    for email in users[:4]:
        attempt(client, email, ip="198.51.100.2")
    assert attempt(client, users[0], ip="198.51.100.2").status_code == 429
    response = attempt(client, users[4], "test-pass", ip="198.51.100.3")
    assert response.status_code == 302


def test_the_login_page_itself_is_not_limited(client, users):
    for _ in range(6):
        assert client.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 200
    assert login(client, users[0]).status_code == 302
