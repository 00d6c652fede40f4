"""Self-service access in a real browser: forgot -> reset -> sign in; an admin enrolls in
two-factor sign-in and signs in with a code and with a recovery code; Sign out everywhere
ends another browser's session."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.models import OutboxEmail, Role
from tests.browser.helpers import CODE_LABEL, sign_in
from tests.builders import PASSWORD, make_reseller, make_user

NEW_PASSWORD = "my-new-demo-password"  # noqa: S105


@pytest.fixture
def app_config():
    return {"TWO_FACTOR_REQUIRED_FOR_ADMINS": True}


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_forgot_password_reset_and_sign_in(page: Page, server, db):
    page.goto(f"{server.url}/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_text("If an account has this email")).to_be_visible()
    db.rollback()
    mail = db.scalar(select(OutboxEmail).where(OutboxEmail.subject == "Reset your password"))
    assert mail.to_address == "alice@example.com"
    path = re.search(r"http://\S+(/reset-password/\S+)", mail.body).group(1)
    page.goto(f"{server.url}{path}")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Confirm password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_text("Your password is changed")).to_be_visible()
    sign_in(page, server.url, "alice@example.com", NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/billing/balance$"))
    # The link was used: it no longer works.
    page.goto(f"{server.url}{path}")
    expect(page.get_by_role("heading", name="This link is not valid")).to_be_visible()


def sign_in_with_password(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_admin_enrolls_in_two_factor_then_signs_in_with_a_code_and_a_recovery_code(
    page: Page, server, db
):
    make_user(db, role=Role.RESELLER_ADMIN, reseller=make_reseller(db), email="new@admin.test")
    db.commit()
    sign_in_with_password(page, server.url, "new@admin.test")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text()
    totp = pyotp.TOTP(secret)
    page.get_by_label("6-digit code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.get_by_role("list", name="Recovery codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("button", name="I have saved my codes, continue").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.get_by_role("button", name="Sign out").click()

    sign_in_with_password(page, server.url, "new@admin.test")
    page.get_by_label(CODE_LABEL).fill(totp.at(time.time() + 30))  # the next unused code
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.get_by_role("button", name="Sign out").click()

    sign_in_with_password(page, server.url, "new@admin.test")
    page.get_by_label(CODE_LABEL).fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_text("Recovery code used: 9 left.")).to_be_visible()


def test_sign_out_everywhere_ends_another_browsers_session(page: Page, server, browser):
    other = browser.new_context().new_page()
    sign_in(other, server.url, "alice@example.com")
    expect(other).to_have_url(re.compile(r"/billing/balance$"))
    sign_in(page, server.url, "alice@example.com")
    page.get_by_role("link", name="Profile").click()
    page.get_by_role("navigation", name="Profile").get_by_role("link", name="Sessions").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_text("(this browser)")).to_have_count(1)
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    other.reload()
    expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    other.context.close()
