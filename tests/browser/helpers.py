"""The shared sign-in of the browser tests: password, then the demo admins' second factor."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import Page

from portal.demo import DEMO_PASSWORD, DEMO_TOTP_SECRETS

CODE_LABEL = "Code from your authenticator app, or a recovery code"
AFTER_PASSWORD = re.compile(r"/(login/two-factor|admin/|billing/|profile)")


def sign_in(page: Page, base: str, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(AFTER_PASSWORD)
    if "/login/two-factor" in page.url:
        enter_code(page, DEMO_TOTP_SECRETS[email])


def enter_code(page: Page, secret: str) -> None:
    """A code of the current time step, or of the next one if the current one was used."""
    totp = pyotp.TOTP(secret)
    for ahead in (0, 1):
        page.get_by_label(CODE_LABEL).fill(totp.at(time.time() + 30 * ahead))
        page.get_by_role("button", name="Verify").click()
        page.wait_for_load_state()
        if "/login/two-factor" not in page.url:
            return
    raise AssertionError("the two-factor code was refused")
