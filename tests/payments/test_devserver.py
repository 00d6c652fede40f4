"""The demo stack gives Alice and Bob Stripe customers and cards, idempotently."""

from __future__ import annotations

import urllib.request

from portal.devserver import seed_stripe_demo
from portal.models import Account, PaymentCard


def cards_by_account(db) -> dict[str, list[tuple[str, str]]]:
    db.rollback()
    result: dict[str, list[tuple[str, str]]] = {}
    for card in db.query(PaymentCard).order_by(PaymentCard.id):
        number = db.get(Account, card.account_id).number
        result.setdefault(number, []).append((card.last4, card.role.value))
    return result


def test_seed_gives_alice_two_cards_and_bob_one(app, db, demo):
    seed_stripe_demo(app)
    seed_stripe_demo(app)
    assert cards_by_account(db) == {
        "100001": [("4242", "primary"), ("4444", "secondary")],
        "100002": [("4242", "primary")],
    }


def test_seed_recreates_customers_after_localstripe_restarted(app, db, demo, localstripe_url):
    seed_stripe_demo(app)
    db.rollback()
    old_customer = db.query(Account).filter_by(number="100001").one().stripe_customer_id
    urllib.request.urlopen(  # what a fresh localstripe looks like
        urllib.request.Request(f"{localstripe_url}/_config/data", method="DELETE"), timeout=5
    )
    seed_stripe_demo(app)
    db.rollback()
    alice = db.query(Account).filter_by(number="100001").one()
    assert alice.stripe_customer_id not in (None, old_customer)
    assert len(cards_by_account(db)["100001"]) == 2
