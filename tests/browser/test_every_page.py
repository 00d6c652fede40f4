"""Every page of each role, at phone to desktop widths: no sideways scrolling, no console error
or CSP violation, and (axe-core, vendored for the tests) no accessibility violation.

The pages are found by crawling like a person would (links and HTMX loads of the role's area),
one page per URL pattern (ids replaced, query strings dropped), so new pages are covered."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

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
WIDE_JS = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
  .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))"""
# Reported as a console error too, but a listener makes sure no violation goes unseen.
CSP_LISTENER = """document.addEventListener('securitypolicyviolation',
  e => console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`))"""
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
        if response is None or response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
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
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in result
    ]


def watch_console(page: Page) -> list[str]:
    """Console errors and warnings, page errors and CSP violations, as they happen."""
    console: list[str] = []
    page.add_init_script(CSP_LISTENER)
    page.on(
        "console",
        lambda msg: console.append(msg.text)
        if msg.type in ("error", "warning") or "Content Security Policy" in msg.text
        else None,
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
