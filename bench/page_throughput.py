"""Target 1: the signed-in balance page vs a bare /healthz, same gunicorn, same run."""

from __future__ import annotations

from bench.common import Gunicorn, Report, sign_in, wrk
from bench.data import PASSWORD, database_url, ensure_customer

EMAIL = "throughput@bench.example"


def run(kind: str, *, quick: bool) -> Report:
    report = Report("Page throughput (gunicorn, wrk, 8 connections)", kind)
    seconds = 3 if quick else 10
    url = database_url(kind, "throughput")
    ensure_customer(url, EMAIL, 10_000)
    report.figure(f"account with 10,000 ledger entries; {seconds} s per load")
    with Gunicorn(url) as server:
        cookie = sign_in(server.url, EMAIL, PASSWORD)
        headers = {"Cookie": cookie}
        wrk(f"{server.url}/healthz", seconds=1)  # warm-up
        base = wrk(f"{server.url}/healthz", seconds=seconds)
        page = wrk(f"{server.url}/billing/balance", seconds=seconds, headers=headers)
        fragment = wrk(
            f"{server.url}/billing/balance?kind=usage",
            seconds=seconds,
            headers={**headers, "HX-Request": "true"},
        )
    for name, result in (
        ("/healthz", base),
        ("balance page", page),
        ("history fragment", fragment),
    ):
        report.figure(
            f"{name}: {result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, non-2xx {result.non_2xx}"
        )
    for name, result in (("balance page", page), ("history fragment", fragment)):
        report.target(
            f"{name} / healthz req/s",
            result.requests_per_second / base.requests_per_second,
            0.40,
            at_least=True,
        )
        report.target(f"{name} p99 ms", result.p99_ms, 100, at_least=False)
    return report
