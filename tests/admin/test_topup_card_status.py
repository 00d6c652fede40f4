"""One rule decides a top-up card's status everywhere; a new expiry revives an expired card."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import topup_cards
from portal.jobs import expire_topup_cards
from portal.models import Account, CardStatus, TopupCard, utcnow
from tests.admin.test_topup_cards import NEW_EXPIRY, add_card, mass_edit, world  # noqa: F401
from tests.billing.plan_helpers import HTMX, make_card
from tests.builders import login, make_customer

PIN = "5550001234"


@pytest.mark.parametrize("stored", list(CardStatus))
@pytest.mark.parametrize("expiry_days", [None, -2, 2])
def test_the_sql_twin_agrees_with_the_rule(db, world, stored, expiry_days):  # noqa: F811
    now = utcnow()
    expires = None if expiry_days is None else now + timedelta(days=expiry_days)
    card = add_card(db, reseller_id=world["acme"], status=stored, expires_at=expires)
    db.commit()
    expected = topup_cards.card_status(stored, expires, now)
    for status in CardStatus:
        found = db.scalar(
            select(TopupCard.id).where(
                TopupCard.id == card.id, topup_cards.status_condition(status, now)
            )
        )
        assert (found is not None) == (status == expected), (stored, expiry_days, status)
    assert topup_cards.display_status(card, now) == expected
    # Activated stays activated whatever the date; otherwise only the date decides.
    if stored == CardStatus.ACTIVATED:
        assert expected == CardStatus.ACTIVATED
    else:
        assert expected == (CardStatus.EXPIRED if expiry_days == -2 else CardStatus.NEW)


def test_a_new_future_expiry_makes_an_expired_card_new_and_redeemable(
    app,
    client,
    db,
    world,  # noqa: F811 - the fixture imported above
):
    """The measured defect: extending cards the expiry job had marked expired left them expired."""
    user = make_customer(db)
    account = db.get(Account, user.account_id)
    card = make_card(
        db, reseller_id=account.reseller_id, pin=PIN, expires_at=utcnow() - timedelta(days=1)
    )
    used = add_card(
        db, reseller_id=account.reseller_id, series=card.series, status=CardStatus.ACTIVATED
    )
    db.commit()
    with app.app_context():
        from portal import db as portal_db

        assert expire_topup_cards(portal_db.session(), utcnow()) == 1
    db.rollback()
    assert db.get(TopupCard, card.id).status == CardStatus.EXPIRED

    login(client, "op@example.test")
    response = mass_edit(client, series=card.series, expires_mode="set", expires_at=NEW_EXPIRY)
    assert "changed." in response.get_data(as_text=True)
    db.rollback()
    assert db.get(TopupCard, card.id).status == CardStatus.NEW
    assert db.get(TopupCard, used.id).status == CardStatus.ACTIVATED  # history is untouched

    customer = app.test_client()
    login(customer, user.email)
    answer = customer.post("/billing/redeem", data={"pin": PIN}, headers=HTMX)
    assert "added" in answer.get_data(as_text=True).lower()
    db.rollback()
    assert db.get(TopupCard, card.id).status == CardStatus.ACTIVATED
    assert db.get(Account, account.id).balance_minor == card.amount_minor


def test_a_past_expiry_expires_new_cards(client, db, world):  # noqa: F811
    card = add_card(db, reseller_id=world["acme"], series="PAST")
    db.commit()
    login(client, "op@example.test")
    mass_edit(client, series="PAST", expires_mode="set", expires_at="2020-01-01T00:00")
    db.rollback()
    assert db.get(TopupCard, card.id).status == CardStatus.EXPIRED
