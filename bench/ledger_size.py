"""Target 2: the balance page and first history page cost the same at 1,000,000 entries as at 10."""

from __future__ import annotations

from bench.common import Gunicorn, Report, sequential_latency, sign_in
from bench.data import PASSWORD, database_url, ensure_customer

SMALL, BIG = "small@bench.example", "big@bench.example"
ROUNDS = 3


def run(kind: str, *, quick: bool) -> Report:
    big_entries = 100_000 if quick else 1_000_000
    count = 50 if quick else 200
    report = Report(f"Ledger size: {big_entries:,} entries vs 10", kind)
    url = database_url(kind, "ledger_size")
    ensure_customer(url, SMALL, 10)
    ensure_customer(url, BIG, big_entries)
    with Gunicorn(url, {"WEB_WORKERS": "1"}) as server:
        cookies = {email: sign_in(server.url, email, PASSWORD) for email in (SMALL, BIG)}
        for label, path, headers in (
            ("balance page", "/billing/balance", {}),
            ("first history page", "/billing/balance?kind=usage", {"HX-Request": "true"}),
        ):
            best = _best_medians(server.url + path, cookies, headers, count=count, rounds=ROUNDS)
            report.figure(
                f"{label}: median {best[SMALL]:.2f} ms with 10 entries, "
                f"{best[BIG]:.2f} ms with {big_entries:,} (best of {ROUNDS} alternating rounds)"
            )
            report.target(
                f"{label} latency ratio big/small", best[BIG] / best[SMALL], 1.25, at_least=False
            )
    return report


def _best_medians(url: str, cookies: dict, headers: dict, *, count: int, rounds: int) -> dict:
    """The lowest median per account over alternating rounds.

    Single medians of a few milliseconds move by +-30% on a shared 2-core machine; taking
    each side's best of interleaved rounds compares the two without that drift.
    """
    best: dict[str, float] = {}
    for _ in range(rounds):
        for email, cookie in cookies.items():
            sequential_latency(url, cookie, count=5, headers=headers)  # warm-up
            median = sequential_latency(url, cookie, count=count, headers=headers)
            best[email] = min(best.get(email, median), median)
    return best
