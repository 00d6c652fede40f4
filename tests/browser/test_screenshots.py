"""Retake the README screenshots (docs/screenshots/) from the demo at 1280 px and 390 px.

Not part of the normal run: `SCREENSHOTS=1 pytest tests/browser/test_screenshots.py`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.helpers import sign_in

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOTS = {  # who: [(file, path, width)]
    "alice@example.com": [
        ("home.png", "/billing/", 1280),
        ("balance.png", "/billing/balance", 1280),
        ("license.png", "/billing/license", 1280),
        ("phone-home.png", "/billing/", 390),
        ("phone-balance.png", "/billing/balance", 390),
    ],
    "bob@example.com": [("phone-invoices.png", "/billing/invoices", 390)],
    "admin@acme.example": [
        ("admin-overview.png", "/admin/", 1280),
        ("topup-cards.png", "/admin/topup-cards", 1280),
        ("audit-log.png", "/admin/audit-log", 1280),
        ("phone-admin-overview.png", "/admin/", 390),
        ("phone-admin-customers.png", "/admin/customers", 390),
    ],
}

pytestmark = pytest.mark.skipif(
    not os.environ.get("SCREENSHOTS"), reason="set SCREENSHOTS=1 to retake the README images"
)


@pytest.fixture
def server(demo, live_server):
    return live_server


@pytest.mark.parametrize("email", SHOTS)
def test_retake_screenshots(page: Page, server, email):
    sign_in(page, server.url, email)
    for name, path, width in SHOTS[email]:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
        # The sign-in toast would cover part of the page.
        page.evaluate("() => document.querySelectorAll('.toast').forEach(t => t.remove())")
        target = OUT / name
        page.screenshot(path=str(target), full_page=width < 1000)
        assert target.stat().st_size > 10_000, name
