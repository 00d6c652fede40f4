"""Target 2: the balance page and first history page cost the same at 1,000,000 entries as at 10."""

from __future__ import annotations

from bench.common import Gunicorn, Report, sequential_latency, sign_in
from bench.data import PASSWORD, database_url, ensure_customer

SMALL, BIG = "small@bench.example", "big@bench.example"


def run(kind: str, *, quick: bool) -> Report:
    big_entries = 100_000 if quick else 1_000_000
    count = 50 if quick else 200
    report = Report(f"Ledger size: {big_entries:,} entries vs 10", kind)
    url = database_url(kind, "ledger_size")
    ensure_customer(url, SMALL, 10)
    ensure_customer(url, BIG, big_entries)
    with Gunicorn(url, {"WEB_WORKERS": "1"}) as server:
        for label, path, headers in (
            ("balance page", "/billing/balance", {}),
            ("first history page", "/billing/balance?kind=usage", {"HX-Request": "true"}),
        ):
            medians = {}
            for email in (SMALL, BIG):
                cookie = sign_in(server.url, email, PASSWORD)
                sequential_latency(server.url + path, cookie, count=5, headers=headers)  # warm-up
                medians[email] = sequential_latency(
                    server.url + path, cookie, count=count, headers=headers
                )
            report.figure(
                f"{label}: median {medians[SMALL]:.2f} ms with 10 entries, "
                f"{medians[BIG]:.2f} ms with {big_entries:,}"
            )
            report.target(
                f"{label} latency ratio big/small",
                medians[BIG] / medians[SMALL],
                1.25,
                at_least=False,
            )
    return report
