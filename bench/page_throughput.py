"""The signed-in balance page vs a lean signed-in reference page, same gunicorn, same run.

The reference (bench/lean_page.py, under /lean in the same process) reads the session
cookie, loads the user, runs one query and renders a small template. Beside it: the balance
page, its history fragment, a repeat view answered 304 from the page's ETag, and the live
figures' poll answered 304 (what every open balance page costs every 1.5 s).
"""

from __future__ import annotations

import urllib.parse

from bench.common import Browser, Gunicorn, Report, wrk
from bench.data import PASSWORD, database_url, ensure_customer

EMAIL = "throughput@bench.example"
HTMX = {"HX-Request": "true"}


def _conditional(browser: Browser, path: str, headers: dict) -> dict:
    """The headers of a repeat view: cookie and If-None-Match (checked to answer 304)."""
    browser.request("GET", path, headers=headers)
    browser.conn.request("GET", path, headers={**headers, "Cookie": _cookie(browser)})
    response = browser.conn.getresponse()
    response.read()
    tag = response.getheader("ETag")
    sent = {**headers, "Cookie": _cookie(browser), "If-None-Match": tag}
    browser.conn.request("GET", path, headers=sent)
    again = browser.conn.getresponse()
    again.read()
    if again.status != 304:
        raise RuntimeError(f"{path} answered {again.status} to its own ETag, not 304")
    return sent


def _cookie(browser: Browser) -> str:
    return "; ".join(f"{k}={v}" for k, v in browser.cookies.items())


def run(kind: str, *, quick: bool) -> Report:
    report = Report("Page throughput (gunicorn, wrk, 8 connections)", kind)
    seconds = 3 if quick else 8
    rounds = 2 if quick else 3
    url = database_url(kind, "throughput")
    ensure_customer(url, EMAIL, 10_000)
    report.figure(
        f"account with 10,000 ledger entries; {seconds} s per load, best of {rounds} "
        "alternating rounds per endpoint"
    )
    with Gunicorn(url, app_spec="bench.lean_page:app") as server:
        browser = Browser(server.url)
        browser.sign_in(EMAIL, PASSWORD)
        browser.request("GET", "/billing/balance")  # shows the sign-in's messages, if any
        headers = {"Cookie": _cookie(browser)}
        page_304 = _conditional(browser, "/billing/balance", {})
        poll_304 = _conditional(browser, "/billing/balance/summary", HTMX)
        browser.request("GET", f"/lean/sign-in?email={urllib.parse.quote(EMAIL)}")
        lean_headers = {"Cookie": _cookie(browser)}
        browser.close()

        wrk(f"{server.url}/healthz", seconds=1)  # warm-up
        wrk(f"{server.url}/lean/balance", seconds=1, headers=lean_headers)
        wrk(f"{server.url}/billing/balance", seconds=1, headers=headers)
        # Alternating rounds, each endpoint's best kept: on a shared 2-core machine one load
        # of a few seconds moves by +-30% with the neighbours, the ratios much less so.
        loads = {
            "base": (f"{server.url}/healthz", {}),
            "lean": (f"{server.url}/lean/balance", lean_headers),
            "page": (f"{server.url}/billing/balance", headers),
            "fragment": (f"{server.url}/billing/balance?kind=usage", {**headers, **HTMX}),
            "repeat": (f"{server.url}/billing/balance", page_304),
            "poll": (f"{server.url}/billing/balance/summary", poll_304),
        }
        best = {}
        for _ in range(rounds):
            for name, (target, sent) in loads.items():
                result = wrk(target, seconds=seconds, headers=sent)
                if name not in best or result.requests_per_second > best[name].requests_per_second:
                    best[name] = result
        base, lean, page = best["base"], best["lean"], best["page"]
        fragment, repeat, poll = best["fragment"], best["repeat"], best["poll"]
    results = (
        ("/healthz", base),
        ("lean signed-in page", lean),
        ("balance page", page),
        ("history fragment", fragment),
        ("balance page repeat view (304)", repeat),
        ("live figures poll (304)", poll),
    )
    for name, result in results:
        report.figure(
            f"{name}: {result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, non-2xx/3xx {result.non_2xx}"
        )
    for name, result in (("balance page", page), ("history fragment", fragment)):
        report.figure(
            f"{name} / healthz req/s: {result.requests_per_second / base.requests_per_second:.2f}"
        )
    for name, result in (("balance page", page), ("history fragment", fragment)):
        report.target(
            f"{name} / lean page req/s",
            result.requests_per_second / lean.requests_per_second,
            0.5,
            at_least=True,
        )
        report.target(f"{name} p99 ms", result.p99_ms, 100, at_least=False)
    for name, result in (("repeat view 304", repeat), ("live poll 304", poll)):
        report.target(
            f"{name} / lean page req/s",
            result.requests_per_second / lean.requests_per_second,
            1.0,
            at_least=True,
        )
    return report
