"""The language switcher in a phone-sized browser: the page comes back in Spanish, with the
language attribute set, no console error and no accessibility violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import sign_in
from tests.browser.test_every_page import axe_violations, watch_console


@pytest.fixture
def server(demo, live_server):
    return live_server


def test_the_switcher_turns_the_page_spanish_at_390px(page: Page, server):
    console = watch_console(page)
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{server.url}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert axe_violations(page) == []

    page.get_by_label("Language", exact=True).select_option(label="Español")
    page.get_by_role("button", name="Change language").click()
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    assert page.evaluate("() => document.documentElement.lang") == "es"
    expect(page.get_by_role("status").first).to_contain_text("Idioma cambiado a Español.")
    expect(page.get_by_label("Idioma", exact=True)).to_have_value("es")
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide"
    assert axe_violations(page) == []
    assert console == [], console


def test_a_signed_in_customer_switches_and_the_profile_keeps_it(page: Page, server):
    console = watch_console(page)
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, server.url, "alice@example.com")
    page.get_by_label("Language", exact=True).select_option("de")
    page.get_by_role("button", name="Change language").click()
    expect(page.get_by_role("heading", name="Kontoguthaben")).to_be_visible()
    assert page.evaluate("() => document.documentElement.lang") == "de"
    assert axe_violations(page) == []
    page.goto(f"{server.url}/profile")
    expect(page.get_by_label("Bevorzugte Sprache")).to_have_value("de")
    assert console == [], console
