"""An open balance page shows the switch's charge and a payment's credit within 2 s, no reload."""

from __future__ import annotations

import json
import re
import urllib.request
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal import api_tokens
from portal.ledger import post_entry
from portal.models import Account, EntryKind
from portal.money import format_money
from tests.browser.helpers import sign_in
from tests.browser.test_every_page import axe_violations, watch_console


@pytest.fixture
def app_config():
    return {"AFTER_DEBIT_CHECKS": "off"}


@pytest.fixture
def server(demo, live_server):
    return live_server


@pytest.fixture
def switch(app):
    """The switch's API token for Alice's reseller, and a way to credit her like a payment."""
    from portal import db

    with app.app_context():
        session = db.session()
        account = session.scalar(select(Account).where(Account.number == "100001"))
        token = api_tokens.create_token(session, reseller_id=account.reseller_id, name="switch")
        session.commit()
        account_id, plaintext = account.id, token.plaintext

    def credit(amount_minor: int, key: str) -> None:
        with app.app_context():
            session = db.session()
            post_entry(
                session,
                account_id=account_id,
                kind=EntryKind.TOPUP,
                amount_minor=amount_minor,
                description="Top-up by card",
                idempotency_key=key,
            )
            session.commit()

    return {"token": plaintext, "credit": credit}


def charge(base: str, token: str, amount: str, key: str) -> dict:
    request = urllib.request.Request(
        f"{base}/api/v1/accounts/100001/charges",
        data=json.dumps({"amount": amount, "description": "Call", "idempotency_key": key}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 201
        return json.loads(response.read())


def pounds(minor: int) -> str:
    return format_money(minor, "GBP")


def test_the_open_balance_page_shows_a_charge_and_a_credit_within_2_seconds(
    page: Page, server, switch
):
    console = watch_console(page)
    sign_in(page, server.url, "alice@example.com")
    expect(page).to_have_url(re.compile(r"/billing/balance$"))
    page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads
    balance = page.locator("#balance-value")
    before = balance.inner_text()
    with page.expect_response(lambda r: r.url.endswith("/billing/balance/summary")) as poll:
        pass
    assert poll.value.status == 304  # nothing changed: the poll costs no rendering
    expect(balance).to_have_text(before)

    answer = charge(server.url, switch["token"], "1.25", "live-1")
    charged = int(Decimal(answer["balance"]) * 100)
    expect(balance).to_have_text(pounds(charged), timeout=2000)

    switch["credit"](2000, "payment:live-2")
    expect(balance).to_have_text(pounds(charged + 2000), timeout=2000)
    expect(page.locator("#available-value")).to_have_text(pounds(charged + 2000))

    assert page.evaluate("() => window.sameDocument === true")  # no reload
    assert axe_violations(page) == []
    assert console == [], console
