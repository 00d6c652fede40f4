"""Every page of each role, at phone to desktop widths: no sideways scrolling, no console error
or CSP violation, and (axe-core, vendored for the tests) no accessibility violation.

The pages are found by crawling like a person would (links and HTMX loads of the role's area),
one page per URL pattern (ids replaced, query strings dropped), so new pages are covered."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import sign_in

WIDTHS = (360, 390, 768, 1280, 1440)
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
ROLES = {
    "customer": ("alice@example.com", "/billing/balance", ("/billing", "/profile")),
    "reseller admin": ("admin@acme.example", "/admin/", ("/admin", "/profile")),
    "operator": ("operator@example.com", "/admin/", ("/admin", "/profile")),
}
# Downloads and pages that end the session are not pages to look at.
SKIP = re.compile(r"(\.csv|\.pdf|/csv|/pdf|/download|/export|logout|sign-out|/outbox/\d+/html)")
# The outermost elements that stick out on the right, to say what to fix.
WIDE_JS = """() => {
  const out = e => e.getBoundingClientRect().right > window.innerWidth + 1;
  return [...document.querySelectorAll('body *')]
    .filter(e => out(e) && (!e.parentElement || !out(e.parentElement)))
    .slice(0, 3)
    .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className);
}"""
# Reported as a console error too, but a listener makes sure no violation goes unseen.
CSP_LISTENER = """document.addEventListener('securitypolicyviolation',
  e => console.error(
    `Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`))"""
LINKS_JS = """() => [...document.querySelectorAll('a[href]')].map(a => a.href)"""


@pytest.fixture
def app_config(stripe_config):
    return stripe_config  # the cards page loads Stripe.js from localstripe


@pytest.fixture
def server(demo, live_server):
    return live_server


def pattern(path: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/<id>", path)


def crawl(page: Page, base: str, start: str, prefix: tuple[str, ...], limit: int = 60) -> list[str]:
    """Visit each URL pattern of the area once; return the paths visited."""
    queue, seen, visited = [start], set(), []
    while queue and len(visited) < limit:
        path = queue.pop(0)
        if pattern(path) in seen:
            continue
        seen.add(pattern(path))
        response = page.goto(base + path)
        if (
            response is None
            or response.status != 200
            or "text/html" not in response.headers.get("content-type", "")
        ):
            continue
        visited.append(path)
        yield path
        for href in page.evaluate(LINKS_JS):
            parts = urlsplit(href)
            if (
                parts.netloc == urlsplit(base).netloc
                and parts.path.startswith(prefix)
                and not SKIP.search(parts.path)
                and pattern(parts.path) not in seen
            ):
                queue.append(parts.path)


def page_width_problems(page: Page) -> list[str]:
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        scroll, inner = page.evaluate(
            "() => [document.scrollingElement.scrollWidth, window.innerWidth]"
        )
        if scroll > inner:
            problems.append(f"{width}px: document {scroll}px wide, {page.evaluate(WIDE_JS)}")
    return problems


def axe_violations(page: Page) -> list[str]:
    page.evaluate(AXE)
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in result]


def watch_console(page: Page) -> list[str]:
    """Console errors and warnings, page errors and CSP violations, as they happen."""
    console: list[str] = []
    page.add_init_script(CSP_LISTENER)
    page.on(
        "console",
        lambda msg: (
            console.append(msg.text)
            if msg.type in ("error", "warning") or "Content Security Policy" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    return console


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_phone_to_desktop_without_console_errors_or_axe_violations(
    page: Page, server, role
):
    email, start, prefix = ROLES[role]
    console = watch_console(page)
    sign_in(page, server.url, email)
    failures: dict[str, list[str]] = {}
    pages = []
    for path in crawl(page, server.url, start, prefix):
        pages.append(path)
        problems = page_width_problems(page)
        page.set_viewport_size({"width": 1280, "height": 800})
        problems += axe_violations(page)
        if console:
            problems += [f"console: {text}" for text in console]
            console.clear()
        if problems:
            failures[path] = problems
    assert len(pages) >= 8, pages
    assert not failures, "\n".join(f"{path}: {problems}" for path, problems in failures.items())


def focused(page: Page) -> str:
    return page.evaluate(
        "() => document.activeElement.id || document.activeElement.className"
        " || document.activeElement.tagName"
    )


def test_htmx_swaps_log_nothing_pass_axe_and_move_focus_to_the_result(page: Page, server):
    """The states reached by HTMX (more rows, a refused form, live search, sorting): no console
    error or CSP violation, no axe violation, and the keyboard lands on the result."""
    console = watch_console(page)
    sign_in(page, server.url, "alice@example.com")
    older = page.get_by_role("button", name="Older")
    older.focus()
    page.keyboard.press("Enter")
    page.locator("#history-rows tr:not(#older-row)").nth(49).wait_for()
    page.wait_for_function("() => document.activeElement !== document.body", timeout=3000)
    assert page.evaluate("() => document.activeElement.closest('#history-rows') !== null")

    page.goto(f"{server.url}/billing/transfer")
    page.get_by_label("Recipient account").fill("100002")
    page.get_by_label("Amount").fill("-5")
    page.get_by_label("Amount").press("Enter")
    error = page.locator("#transfer-area .field-error").first
    error.wait_for()
    page.wait_for_function("() => document.activeElement.classList.contains('field-error')")
    assert page.evaluate("() => document.activeElement.classList.contains('field-error')")
    assert axe_violations(page) == []

    # The review step: both accounts and the amount, focus on it, Send by keyboard.
    page.get_by_label("Amount").fill("1.00")
    page.get_by_role("button", name="Review transfer").click()
    expect(page.get_by_role("heading", name="Review the transfer")).to_be_visible()
    page.wait_for_function("() => document.activeElement.id === 'transfer-review-title'")
    expect(page.locator(".review-details")).to_contain_text("Account 100002")
    assert axe_violations(page) == []
    send = page.get_by_role("button", name="Send £1.00 to 100002")
    send.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#transfer-result")).to_contain_text("£1.00 sent to account 100002")
    page.wait_for_function("() => document.activeElement.id === 'transfer-result'")

    assert console == [], console


def test_admin_htmx_states_log_nothing_and_pass_axe(page: Page, server):
    console = watch_console(page)
    sign_in(page, server.url, "operator@example.com")
    page.goto(f"{server.url}/admin/customers")
    search = page.get_by_label("Search", exact=True)
    search.fill("Alice")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(600)  # the live search fires after 400 ms of quiet
    page.wait_for_load_state("networkidle")
    assert focused(page) == search.get_attribute("id"), "typing must not lose focus"
    assert axe_violations(page) == []

    page.goto(f"{server.url}/admin/topup-cards")
    page.get_by_role("link", name="Serial Number").click()
    expect(page.locator("th[aria-sort]")).to_contain_text("Serial Number")
    assert axe_violations(page) == []
    assert console == [], console
